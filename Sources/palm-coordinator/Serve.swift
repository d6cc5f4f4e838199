import ArgumentParser
import Foundation
import PalmCoordinator
import PalmTLS

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the coordinator daemon.")
    @Option(help: "Configuration file.") var config = CoordinatorConfiguration.defaultPath

    func run() throws {
        do {
            let c = try CoordinatorConfiguration.load(path: config)
            let context = try TLSContext(configuration: c.tls)
            guard context.localIdentity.role == .coordinator else {
                fail("error: \(c.tls.certificateChain) does not carry the coordinator role (certs/palm-ca host NAME --role coordinator)")
                throw ExitCode(1)
            }
            let store = try CoordinatorStore(path: c.database)
            let key = try SigningKey(pemFile: c.tls.privateKey)
            let service = CoordinatorService(store: store, audit: AuditLog(store: store, key: key),
                                             policy: try AccessPolicy.load(path: c.policyFile),
                                             settings: CoordinatorSettings(c), ticketKey: key)
            let server = try CoordinatorServer(host: c.listenAddress, port: c.listenPort, context: context, service: service,
                                               schedulerInterval: c.schedulerInterval) { event in
                FileHandle.standardError.write(Data("palm-coordinator: \(event)\n".utf8))
            }
            print("listening on \(c.listenAddress):\(server.listener.port)")
            fflush(stdout)
            server.run()
        } catch let e as ExitCode {
            throw e
        } catch {
            fail("error: \(error)")
            throw ExitCode(1)
        }
    }
}
