import ArgumentParser
import Foundation
import PalmSupport
import PalmCrypto
import PalmTLS

/// Benchmarks that print measurements; scripts/bench.sh turns them into ratios against baselines
/// measured in the same run. Nothing here asserts a speed.
struct PalmBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "palm-bench",
        abstract: "Measure palm's components (used by scripts/bench.sh).",
        subcommands: [TLSThroughput.self, HandshakeLatency.self, EngineMigrate.self, SchedulerCycle.self, HeartbeatRate.self, AttestationCost.self, AttestationRound.self])
}

/// Streams BYTES through a PalmTLS channel over loopback: one sender thread, one receiver thread,
/// writes of --write-size bytes. Prints "bytes seconds", timed from the first write until the
/// receiver acknowledged the last byte.
struct TLSThroughput: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tls-throughput",
                                                    abstract: "PalmTLS stream throughput over loopback.")

    @Option(help: "Certificate chain (PEM).") var cert: String
    @Option(help: "Private key (PEM).") var key: String
    @Option(help: "Cluster CA certificate (PEM).") var ca: String
    @Option(help: "Bytes to send.") var bytes: Int = 1 << 30
    @Option(help: "Bytes per write.") var writeSize: Int = 256 << 10

    func validate() throws {
        guard bytes > 0 else { throw ValidationError("--bytes must be positive") }
        guard writeSize > 0 else { throw ValidationError("--write-size must be positive") }
    }

    func run() throws {
        let context = try TLSContext(configuration: TLSConfiguration(certificateChain: cert, privateKey: key, trustRoots: ca))
        let listener = try TLSListener(host: "127.0.0.1", port: 0, context: context)
        let total = bytes, size = writeSize
        let receiverDone = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var receiverError: Error?
        Thread {
            do {
                guard let ch = try listener.accept(timeout: 30) else { throw TLSError.timeout(operation: "accept", seconds: 30) }
                let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
                defer { buf.deallocate() }
                var got = 0
                while got < total { got += try ch.read(into: buf) }
                try ch.write([UInt8(ascii: "k")])
                ch.close()
            } catch {
                receiverError = error
            }
            receiverDone.signal()
        }.start()

        let ch = try TLSChannel.connect(host: "127.0.0.1", port: listener.port, context: context)
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
        defer { buf.deallocate() }
        buf.initializeMemory(as: UInt8.self, repeating: 0xA5)
        let start = MonotonicClock.now()
        var sent = 0
        while sent < total {
            let n = min(size, total - sent)
            try ch.write(UnsafeRawBufferPointer(rebasing: buf[0..<n]))
            sent += n
        }
        var ack = [UInt8](repeating: 0, count: 1)
        _ = try ack.withUnsafeMutableBytes { try ch.read(into: $0) }
        let seconds = MonotonicClock.now() - start
        receiverDone.wait()
        if let receiverError { throw receiverError }
        print("\(total) \(String(format: "%.6f", seconds))")
    }
}

PalmBench.main()
