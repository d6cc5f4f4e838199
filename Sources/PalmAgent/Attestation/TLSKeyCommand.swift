import ArgumentParser
import Foundation
import PalmCrypto
import PalmSecurity
import PalmWire
import PalmTLS
import PalmTPM

/// An agent that may keep its TLS key in the host's TPM: where its configuration says the TPM is.
public protocol TPMKeyAgent: EvidenceVerifyingAgent {
    /// The TLS settings and the `[attestation]` TPM settings of the configuration at `path`.
    static func tlsAndTPM(configPath path: String) throws -> (tls: TLSConfiguration, tpm: PlatformAttestationSettings)
}

extension SourceConfiguration: TPMKeyAgent {
    public static func tlsAndTPM(configPath path: String) throws -> (tls: TLSConfiguration, tpm: PlatformAttestationSettings) {
        let c = try load(path: path)
        return (c.tls, c.hostAttestation)
    }
}

extension DestinationConfiguration: TPMKeyAgent {
    public static func tlsAndTPM(configPath path: String) throws -> (tls: TLSConfiguration, tpm: PlatformAttestationSettings) {
        let c = try load(path: path)
        return (c.tls, c.attestation)
    }
}

/// `tls-key`, the same for both agents: the TLS key in this host's TPM (`[attestation] tpm`) —
/// its TPM name and public key, whether `tls.certificate` is for it — and with `--csr FILE` a
/// certificate request signed in the TPM, from which `certs/palm-ca host NAME --csr FILE`
/// issues the host's certificate. Then `tls.key = "tpm"` makes it the host's TLS key: a copy of
/// the configuration and certificate is useless on any other machine.
public struct TLSKeyCommand<Agent: TPMKeyAgent>: ParsableCommand {
    public static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "tls-key", abstract: "The TLS key in this host's TPM; with --csr, a certificate request for it.")
    }

    @Option(help: "Configuration file.") var config: String = Agent.defaultConfigPath
    @Option(help: "Write a certificate request for the TPM's TLS key to this file (signed in the TPM).") var csr: String?
    @Option(help: "The host's name in the request (default: the common name of tls.certificateChain).") var name: String?

    public init() {}

    public func run() throws {
        do {
            let (tls, settings) = try Agent.tlsAndTPM(configPath: config)
            let key = try HostTLS.tpmKey(settings)
            let area = try TPMPublicArea(decoding: key.publicArea)
            // The certificate as it is now: none yet is normal before `--csr`; one that cannot be read is said so.
            let certificate = Result { try VerifyingKey(certificateFile: tls.certificateChain).subjectPublicKeyInfo() }
            print("TLS key in the TPM at \(settings.tpm)")
            print("  TPM name    \(Hex.encode(area.name))")
            print("  public key  sha256:\(SHA256.hash(key.subjectPublicKeyInfo).hex) (SubjectPublicKeyInfo)")
            let state: String
            switch certificate {
            case let .success(spki): state = spki == key.subjectPublicKeyInfo ? "a certificate for this key" : "a certificate for another key"
            case .failure where !FileManager.default.fileExists(atPath: tls.certificateChain): state = "no certificate yet"
            case let .failure(error): state = "cannot be read (\(error))"
            }
            print("  \(tls.certificateChain): " + state)
            print("  tls.key = " + (tls.keyIsInTPM ? "\"tpm\": in use" : "a file: not in use (set tls.key = \"tpm\")"))
            guard let csr else { return }
            let host: String
            if let name {
                host = name
            } else {
                let cn: String?
                do { cn = try CertificateIdentity.load(pemFile: tls.certificateChain).commonName } catch {
                    throw ValidationError("--name is needed: \(tls.certificateChain) gives no host name (\(error))")
                }
                guard let cn else { throw ValidationError("--name is needed: \(tls.certificateChain) has no common name") }
                host = cn
            }
            let request = try CertificateRequest.pem(commonName: host, key: try key.signingKey())
            guard FileManager.default.createFile(atPath: csr, contents: Data(request.utf8)) else {
                throw ValidationError("cannot write \(csr)")
            }
            print("wrote \(csr) (CN=\(host), signed in the TPM); issue the certificate with")
            print("  certs/palm-ca host \(host) --csr \(csr) [--ip ADDR]…")
        } catch let e as ValidationError {
            throw e
        } catch {
            CLI.fail(Agent.program, error)
            throw ExitCode(1)
        }
    }
}
