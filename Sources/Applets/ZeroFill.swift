import ArgumentParser
import RescueCore

public struct ZeroFillCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "zerofill",
        abstract: "Overwrite a mounted filesystem's free space with zeros."
    )

    public init() {}

    public func run() throws {
        throw RescueError("", "", "not implemented yet")
    }
}
