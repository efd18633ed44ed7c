import ArgumentParser
import RescueCore

public struct NtpLeap: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "ntpleap",
        abstract: "Make ntpd leap-second safe (disable kernel), idempotently, with a backup."
    )

    public init() {}

    public func run() throws {
        throw RescueError("", "", "not implemented yet")
    }
}
