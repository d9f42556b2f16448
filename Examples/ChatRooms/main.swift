import Duplex
import Logging
import ServiceLifecycle

// swift run chat-rooms [PORT]   then, in two shells:
//   swift run duplex connect "ws://127.0.0.1:8081/rooms/lobby?name=ana"
//   swift run duplex connect "ws://127.0.0.1:8081/rooms/lobby?name=ben"
let port = CommandLine.arguments.dropFirst().first.flatMap(Int.init) ?? 8081
let logger = Logger(label: "chat-rooms")
let handle = ChatRooms.ServerHandle()
let server = WebSocketServer(configuration: .init(host: "127.0.0.1", port: port), router: ChatRooms.router(server: handle),
                             logger: logger)
handle.set(server)
let address = try await server.start()
print("chat rooms on ws://127.0.0.1:\(address.port ?? port)/rooms/ROOM?name=NAME (Ctrl-C stops)")
// SIGINT/SIGTERM: every member gets 1001, then the server stops.
try await ServiceGroup(services: [server], gracefulShutdownSignals: [.sigint, .sigterm], logger: logger).run()
