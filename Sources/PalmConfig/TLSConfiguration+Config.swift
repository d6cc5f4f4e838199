import PalmTLS

/// The `[tls]` table every palm configuration has.
extension TLSConfiguration {
    public static func load(_ file: ConfigFile) throws -> TLSConfiguration {
        TLSConfiguration(
            certificateChain: try file.string("tls.certificate"),
            privateKey: try file.string("tls.key"),
            trustRoots: try file.string("tls.ca"),
            crl: try file.optionalString("tls.crl"),
            connectTimeout: try file.double("tls.connect_timeout_s", default: 5, range: 0.1...300),
            handshakeTimeout: try file.double("tls.handshake_timeout_s", default: 10, range: 0.1...300),
            ioTimeout: try file.double("tls.io_timeout_s", default: 60, range: 0.1...3600),
            sendBuffer: try file.bytes("tls.send_buffer", default: TLSConfiguration.defaultSendBuffer,
                                       range: TLSConfiguration.sendBufferRange))
    }
}
