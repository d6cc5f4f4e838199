// swift-tools-version:6.0
import PackageDescription

// palm's fuzz targets: libFuzzer entry points over every decoder that takes outside bytes.
// Built by scripts/fuzz.sh with `swift build --sanitize=fuzzer --sanitize=address`; each target
// runs from a copy of its seed corpus in Fuzz/Corpus/<target>. Regressions (inputs that once
// crashed) live in Fuzz/Regressions/<target> and are replayed before every run.
let targets = ["FuzzFrames", "FuzzMemoryBatch", "FuzzTicket", "FuzzAttestation", "FuzzEvidence", "FuzzCoordinatorRequest", "FuzzConfig", "FuzzXenPlatform", "FuzzPlatformEvidence"]

let package = Package(
    name: "palm-fuzz",
    platforms: [.macOS(.v13)],
    dependencies: [.package(name: "palm", path: "..")],
    targets: targets.map { name in
        .executableTarget(name: name, dependencies: ["FuzzSupport", .product(name: "PalmFuzzable", package: "palm")])
    } + [
        .target(name: "FuzzSupport", dependencies: [.product(name: "PalmFuzzable", package: "palm")]),
        .executableTarget(name: "FuzzSeeds", dependencies: ["FuzzSupport", .product(name: "PalmFuzzable", package: "palm")]),
    ],
    swiftLanguageModes: [.v5]
)
