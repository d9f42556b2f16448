import ArgumentParser

/// The `duplex` command-line tool.
@main
struct DuplexCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "duplex",
        abstract: "A WebSocket server, client and load generator.",
        subcommands: [Serve.self, Connect.self, Bench.self]
    )
}
