import ArgumentParser

/// --progress and -v, the same for every applet that has them; `Wording`
/// says what -v adds (the FTP applets trace the protocol).
public struct ReportOptions<Wording: VerboseWording>: ParsableArguments {
    @Flag(name: .customLong("progress"), help: "Show progress even when stderr is not a terminal.")
    public var progress = false

    @Flag(name: [.customShort("v"), .customLong("verbose")], help: ArgumentHelp(Wording.verboseHelp))
    public var verbose = false

    public init() {}
}

/// The help line of -v.
public protocol VerboseWording { static var verboseHelp: String { get } }

/// Applets that work on local files and devices.
public enum LocalWording: VerboseWording {
    public static var verboseHelp: String { "Say more on stderr." }
}

/// Applets that talk FTP.
public enum FTPWording: VerboseWording {
    public static var verboseHelp: String { "Trace the protocol on stderr (passwords shown as ****)." }
}
