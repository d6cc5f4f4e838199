// swift-tools-version:6.0
import PackageDescription

// Dependencies point down this list (docs/ARCHITECTURE.md):
//   C modules ← PalmWire ← PalmTLS ← PalmMigration/PalmSecurity ← PalmCoordinator ← executables.
// Each C library has exactly one system-library module and one shim target, so a Swift target
// links only the C libraries it actually reaches.
let package = Package(
    name: "palm",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "palm-source", targets: ["palm-source"]),
        .executable(name: "palm-dest", targets: ["palm-dest"]),
        .executable(name: "palm-coordinator", targets: ["palm-coordinator"]),
        .executable(name: "palm-bench", targets: ["palm-bench"]),
        .executable(name: "palm-simguest", targets: ["palm-simguest"]),
        .library(name: "PalmWire", targets: ["PalmWire"]),
        .library(name: "PalmTLS", targets: ["PalmTLS"]),
        .library(name: "PalmCrypto", targets: ["PalmCrypto"]),
        // What the fuzz targets (Fuzz/, their own package) link: every decoder of outside bytes.
        .library(name: "PalmFuzzable", targets: ["PalmWire", "PalmCrypto", "PalmCompression", "PalmSecurity", "PalmControl", "PalmConfig",
                                                   "PalmCoordinator", "PalmAgent", "PalmXenDriver"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-atomics", from: "1.2.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
    ],
    targets: [
        // System libraries (pkg-config names as Debian ships them).
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),
        .systemLibrary(name: "CXen", pkgConfig: "xencontrol", providers: [.apt(["libxen-dev"])]),
        .systemLibrary(name: "CLZ4", pkgConfig: "liblz4", providers: [.apt(["liblz4-dev"])]),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        // tpm2-tss: the marshalling library (what a verifier of TPM evidence needs) and ESAPI with
        // the TCTI loader (what talks to a TPM: the agents only).
        .systemLibrary(name: "CTSS2MU", pkgConfig: "tss2-mu", providers: [.apt(["libtss2-dev"])]),
        .systemLibrary(name: "CTSS2ESys", pkgConfig: "tss2-esys", providers: [.apt(["libtss2-dev"])]),
        // PostgreSQL's own client library (system OpenSSL for its TLS): the coordinator's shared state.
        .systemLibrary(name: "CPostgres", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),

        // One C shim per library: macros, variadics and constants Swift cannot import.
        .target(name: "COpenSSLShims", dependencies: ["COpenSSL"]),
        .target(name: "CSystemdShims", dependencies: ["CSystemd"]),
        .target(name: "CXenShims", dependencies: ["CXen"]),
        .target(name: "CTSS2Shims", dependencies: ["CTSS2ESys"]),

        // The one lock box, the one durable-file writer: what every layer shares (no C libraries).
        .target(name: "PalmSupport"),
        // Frames and messages; no I/O, no C libraries.
        .target(name: "PalmWire", dependencies: ["PalmSupport"]),
        // SHA-256 (files, pages, HMAC), ECDSA signing keys, certificate identities: system libcrypto,
        // no networking — what the engine needs to hash pages and name its peer.
        .target(name: "PalmCrypto", dependencies: ["COpenSSLShims", "PalmSupport", "PalmWire"]),
        // The only channel palm uses: OpenSSL TLS 1.3 with mutual ECDSA authentication.
        .target(name: "PalmTLS", dependencies: ["COpenSSLShims", "PalmCrypto", "PalmSupport", "PalmWire"]),
        // The hypervisor driver protocol and the sim driver; no C library.
        .target(name: "PalmHypervisor", dependencies: [
            "PalmSupport", "PalmWire", .product(name: "Atomics", package: "swift-atomics"),
        ]),
        // The Xen driver (libxenctrl, libxenforeignmemory, libxenlight): linked only by the agents.
        .target(name: "PalmXenDriver", dependencies: ["PalmHypervisor", "PalmSupport", "PalmWire", "CXenShims"]),

        // MEMORY batch compression (lz4, zstd) for links that are the bottleneck.
        .target(name: "PalmCompression", dependencies: ["CLZ4", "CZstd", "PalmWire"]),

        // Checked TOML configuration files shared by the agents and the coordinator.
        .target(name: "PalmConfig", dependencies: ["PalmSupport", "PalmWire", "PalmTLS", "TOMLKit"]),
        // The coordinator's API as agents and operators speak it: requests, reports, orders, client.
        .target(name: "PalmControl", dependencies: ["PalmConfig", "PalmSecurity", "PalmWire", "PalmCrypto", "PalmTLS"]),

        // sd_notify, the watchdog, signals and the journald LogHandler for the three daemons.
        .target(name: "PalmSystemd", dependencies: [
            "CSystemdShims", "PalmSupport", "PalmWire", .product(name: "Logging", package: "swift-log"),
        ]),

        // What the daemons count and measure, through swift-metrics (names in MetricName).
        .target(name: "PalmMetrics", dependencies: [.product(name: "Metrics", package: "swift-metrics")]),
        // GET /metrics: the Prometheus registry behind swift-metrics, served by its own small HTTP
        // server (ScrapeServer); linked only by the three daemons.
        .target(name: "PalmMetricsEndpoint", dependencies: [
            "PalmConfig", "PalmMetrics", "PalmSupport", .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        // What palm-dest's and the coordinator's TLS servers share: the handshake of an admitted
        // connection, every refusal logged and counted alike.
        .target(name: "PalmServer", dependencies: [
            "PalmMetrics", "PalmSupport", "PalmTLS", .product(name: "Logging", package: "swift-log"),
        ]),
        // What the engine asks of the protections (ticket, attestation, hand-off signatures, journal,
        // evidence), as protocols: the engine calls them, PalmSecurity and the agents implement them.
        .target(name: "PalmProtection", dependencies: ["PalmWire", "PalmCrypto"]),
        // Tickets, replay cache, attestation policy, hand-off signatures, evidence.
        .target(name: "PalmSecurity", dependencies: [
            "CTSS2MU", "PalmSupport", "PalmWire", "PalmCrypto", "PalmTLS", "PalmProtection", .product(name: "Logging", package: "swift-log"),
        ]),
        // A TPM 2.0 through tpm2-tss's ESAPI: the attestation key, quotes, PCRs, the endorsement
        // key and its certificate, credential activation. Linked only by the agents.
        .target(name: "PalmTPM", dependencies: ["CTSS2ESys", "CTSS2Shims", "PalmSupport", "PalmWire", "PalmCrypto", "PalmSecurity"]),
        // The coordinator: state in SQLite (GRDB) or PostgreSQL (libpq), signed audit chain, access policy.
        .target(name: "PalmCoordinator", dependencies: [
            "CPostgres", "PalmSupport", "PalmWire", "PalmCrypto", "PalmTLS", "PalmSecurity", "PalmConfig", "PalmControl", "PalmMetrics", "PalmServer", "TOMLKit",
            .product(name: "GRDB", package: "GRDB.swift"), .product(name: "Logging", package: "swift-log"),
        ]),
        // The multi-pass pre-copy engine: policy, sender and receiver state machines, digests.
        .target(name: "PalmMigration", dependencies: [
            "PalmSupport", "PalmWire", "PalmCrypto", "PalmHypervisor", "PalmCompression", "PalmProtection", .product(name: "Logging", package: "swift-log"),
            .product(name: "Atomics", package: "swift-atomics"),
        ]),

        // PalmTLS's channel as the engine's SecureChannel (the engine itself does not import TLS).
        .target(name: "PalmEngineTLS", dependencies: ["PalmMigration", "PalmTLS", "PalmWire"]),
        // What the agents share: configuration files, drivers by name, the destination's server loop.
        .target(name: "PalmAgent", dependencies: [
            "PalmSupport", "PalmWire", "PalmCrypto", "PalmTLS", "PalmEngineTLS", "PalmHypervisor", "PalmXenDriver", "PalmMigration", "PalmProtection", "PalmSecurity", "PalmTPM", "PalmConfig", "PalmControl",
            "PalmMetrics", "PalmServer", "TOMLKit", .product(name: "Logging", package: "swift-log"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .executableTarget(name: "palm-source", dependencies: [
            "PalmAgent", "PalmMetricsEndpoint", "PalmSystemd", "PalmConfig", "PalmMigration", "PalmTLS", "PalmWire",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "palm-dest", dependencies: [
            "PalmAgent", "PalmMetricsEndpoint", "PalmSystemd", "PalmConfig", "PalmMigration", "PalmTLS", "PalmWire", "PalmCrypto", "PalmSecurity",
            "PalmTPM",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "palm-coordinator", dependencies: [
            "PalmCoordinator", "PalmMetrics", "PalmMetricsEndpoint", "PalmConfig", "PalmControl", "PalmSecurity", "PalmSupport", "PalmSystemd", "PalmCrypto", "PalmTLS", "PalmWire",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "palm-simguest", dependencies: [
            "PalmHypervisor", "PalmSupport", "PalmWire", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "palm-bench", dependencies: [
            "PalmEngineTLS", "PalmSupport", "PalmCrypto", "PalmTLS", "PalmWire", "PalmSecurity", "PalmMigration", "PalmHypervisor", "PalmCoordinator", "PalmControl", "PalmProtection",
            "PalmTPM",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // Shared by the test targets: certificates minted with certs/palm-ca, process helpers.
        .target(name: "PalmTestSupport", dependencies: ["PalmSupport", "PalmCrypto", "PalmTLS", "PalmHypervisor", "PalmMigration", "PalmSecurity", "PalmTPM",
                                                        "PalmWire"],
                path: "Tests/PalmTestSupport"),
        .testTarget(name: "PalmWireTests", dependencies: ["PalmWire", "PalmTestSupport"]),
        .testTarget(name: "PalmControlTests", dependencies: ["PalmControl", "PalmWire", "PalmTestSupport"]),
        .testTarget(name: "PalmAgentTests", dependencies: ["PalmAgent", "PalmMetrics", "PalmMigration", "PalmSecurity", "PalmTLS"]),
        .testTarget(name: "PalmCryptoTests", dependencies: ["PalmCrypto", "PalmTestSupport", "PalmWire"]),
        .testTarget(name: "PalmTLSTests", dependencies: ["PalmSecurity", "PalmCrypto", "PalmTLS", "PalmWire", "PalmTestSupport"]),
        .testTarget(name: "CertsToolTests", dependencies: ["PalmSecurity", "PalmCrypto", "PalmTLS", "PalmTestSupport"]),
        .testTarget(name: "PalmCoordinatorTests", dependencies: [
            "PalmCoordinator", "PalmControl", "PalmSecurity", "PalmWire", "PalmCrypto", "PalmTLS", "PalmTestSupport", "PalmAgent",
        ]),
        .testTarget(name: "PalmSystemdTests", dependencies: ["PalmSystemd", "PalmSupport", "PalmWire", .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "PalmXenDriverTests", dependencies: ["PalmXenDriver", "PalmHypervisor", "PalmSupport", "PalmWire"]),
        .testTarget(name: "PalmConfigTests", dependencies: ["PalmConfig", "PalmTLS"]),
        .testTarget(name: "PalmMetricsTests", dependencies: ["PalmMetrics", "PalmMetricsEndpoint"]),
        .testTarget(name: "PalmTPMTests", dependencies: ["PalmTPM", "PalmSecurity", "PalmCrypto", "PalmTLS", "PalmWire", "PalmTestSupport"]),
        .testTarget(name: "PalmSecurityTests", dependencies: ["PalmSecurity", "PalmCrypto", "PalmTLS", "PalmWire", "PalmTestSupport"]),
        .testTarget(name: "PalmCompressionTests", dependencies: ["PalmCompression", "PalmHypervisor", "PalmWire"]),
        .testTarget(name: "PalmMigrationTests", dependencies: [
            "PalmEngineTLS", "PalmMigration", "PalmHypervisor", "PalmSupport", "PalmTestSupport", "PalmCrypto", "PalmTLS", "PalmWire",
            "PalmProtection", .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "MigrationEndToEndTests", dependencies: [
            "PalmEngineTLS", "PalmMigration", "PalmHypervisor", "PalmTestSupport", "PalmAgent", "PalmSecurity", "PalmCrypto", "PalmTLS", "PalmWire",
            "PalmControl", "PalmCoordinator", "PalmConfig", "PalmTPM",
        ]),
    ],
    swiftLanguageModes: [.v6]
)
