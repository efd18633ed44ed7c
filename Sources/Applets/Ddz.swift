import ArgumentParser
import RescueCore

public struct Ddz: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "ddz",
        abstract: "Image a disk or file into an lzop stream, or restore one (-d)."
    )

    public init() {}

    public func run() throws {
        throw RescueError("", "", "not implemented yet")
    }
}
