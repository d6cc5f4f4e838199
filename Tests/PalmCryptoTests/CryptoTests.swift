import Foundation
import PalmCrypto
import PalmTestSupport
import PalmWire
import Testing

@Suite("Signatures and digests")
struct CryptoTests {
    let pki = TestPKI.shared

    @Test("SHA-256 of 'abc' is the FIPS 180-2 test vector")
    func sha256() {
        #expect(SHA256.hash(Array("abc".utf8)).hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test("HMAC-SHA-256 is RFC 4231's test case 2")
    func hmac() {
        let mac = HMACSHA256.authenticate(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8))
        #expect(mac.hex == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    @Test("a file is hashed as its bytes; a missing one is a named error, not the digest of nothing")
    func fileDigest() throws {
        let path = NSTemporaryDirectory() + "palm-crypto-\(getpid())"
        try Data("abc".utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(try SHA256.hash(file: path) == SHA256.hash(Array("abc".utf8)))
        #expect(throws: CryptoError.self) { try SHA256.hash(file: path + ".missing") }
        do { _ = try SHA256.hash(file: path + ".missing") } catch { #expect("\(error)".hasPrefix("cannot read \(path).missing")) }
    }

    @Test("keys and certificates that are not ECDSA, or not there, are refused by name")
    func refusedKeys() {
        #expect(throws: CryptoError.notECDSA(path: pki.cert("rsa"))) { try VerifyingKey(certificateFile: pki.cert("rsa")) }
        #expect(throws: CryptoError.self) { try SigningKey(pemFile: "/nonexistent/key.pem") }
        #expect(throws: CryptoError.self) { try VerifyingKey(certificatePEM: "not a certificate") }
    }

    @Test("an ECDSA signature verifies with the certificate's key and fails when anything changes")
    func ecdsa() throws {
        let key = try SigningKey(pemFile: pki.key("server"))
        let message = Array("migrate vm-7 to node-b".utf8)
        let sig = try key.sign(message)
        let good = try VerifyingKey(certificateFile: pki.cert("server"))
        let other = try VerifyingKey(certificateFile: pki.cert("client"))
        #expect(good.isValidSignature(sig, for: message))
        #expect(!good.isValidSignature(sig, for: Array("migrate vm-7 to node-c".utf8)))
        #expect(!other.isValidSignature(sig, for: message))
        var flipped = sig
        flipped[flipped.count - 1] ^= 1
        #expect(!good.isValidSignature(flipped, for: message))
        #expect(!good.isValidSignature([], for: message))
    }
}
