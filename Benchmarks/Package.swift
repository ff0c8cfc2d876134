// swift-tools-version:6.0
// Benchmarks for S2Scope: `s2scope-gen`, a deterministic generator of large, realistic s2s captures
// with a ground-truth file (see docs/BENCH.md and scripts/bench.sh). A separate package so the main
// package's build and tests never see it; it depends on the main package by path.
import PackageDescription

let package = Package(
    name: "S2ScopeBenchmarks",
    products: [
        .executable(name: "s2scope-gen", targets: ["s2scope-gen"]),
        .executable(name: "xmpp-bench", targets: ["xmpp-bench"]),
        .executable(name: "hostile-state-gen", targets: ["hostile-state-gen"]),
    ],
    dependencies: [
        // Only the S2Synth product (packet builder, pcap writer): a cold build skips the analyzer.
        .package(name: "S2Scope", path: ".."),
    ],
    targets: [
        .executableTarget(
            name: "s2scope-gen",
            dependencies: [.product(name: "S2Synth", package: "S2Scope")]
        ),
        .executableTarget(name: "xmpp-bench", dependencies: [.product(name: "S2XMPPStream", package: "S2Scope")]),
        // The hostile-state corpus (S2Synth.HostileState) as pcap files, for `make hostile-scaling`.
        .executableTarget(name: "hostile-state-gen", dependencies: [.product(name: "S2Synth", package: "S2Scope")]),
    ],
    swiftLanguageModes: [.v6]
)
