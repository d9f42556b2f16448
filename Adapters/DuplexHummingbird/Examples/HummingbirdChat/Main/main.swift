import HummingbirdChat

// swift run --package-path Adapters/DuplexHummingbird hummingbird-chat   then, in two shells:
//   swift run duplex connect "ws://127.0.0.1:8083/chat/lobby?name=ana"
//   swift run duplex connect "ws://127.0.0.1:8083/chat/lobby?name=ben"
let port = CommandLine.arguments.dropFirst().first.flatMap(Int.init) ?? 8083
try await ChatApp.build(port: port).runService()
