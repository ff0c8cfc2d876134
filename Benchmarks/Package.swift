// swift-tools-version:6.1
// Benchmarks for S2Scope (see docs/BENCH.md and scripts/bench.sh). A separate package so the main
// package's build, tests and CI never see it; it depends on the main package by path.
//   s2scope-gen       deterministic generator of large, realistic s2s captures with a ground truth
//   xmpp-bench        micro-benchmark of the XMPP stream layer alone
//   EngineBenchmarks  package-benchmark (ordo-one/benchmark) suite: mallocs, instructions and wall
//                     time of the analysis engine over a capture held in memory
//                     (`swift package benchmark --target EngineBenchmarks`; `make bench` runs it)
// swift-tools-version 6.1 for package traits: package-benchmark counts mallocs with its
// MallocInterposer trait. Its other default trait, RuntimeInterposer (ARC counts on Linux with Swift
// 6.3), needs a package that is not in the local mirror, so the traits are named explicitly.
import PackageDescription

let package = Package(
    name: "S2ScopeBenchmarks",
    products: [
        .executable(name: "s2scope-gen", targets: ["s2scope-gen"]),
        .executable(name: "xmpp-bench", targets: ["xmpp-bench"]),
        .executable(name: "hostile-state-gen", targets: ["hostile-state-gen"]),
        .executable(name: "floor-bench", targets: ["floor-bench"]),
    ],
    dependencies: [
        .package(name: "S2Scope", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // Only the S2Synth product (packet builder, pcap writer): a cold build skips the analyzer.
        .executableTarget(
            name: "s2scope-gen",
            dependencies: [.product(name: "S2Synth", package: "S2Scope")]
        ),
        .executableTarget(name: "xmpp-bench", dependencies: [.product(name: "S2XMPPStream", package: "S2Scope")]),
        // The hostile-state corpus (S2Synth.HostileState) as pcap files, for `make hostile-scaling`.
        .executableTarget(name: "hostile-state-gen", dependencies: [.product(name: "S2Synth", package: "S2Scope")]),
        // The floor of S2Scope's own reading, decoding and reassembly layers and of the cheapest
        // Swift use of expat, stage by stage, beside the C yardstick (make bench).
        .executableTarget(name: "floor-bench", dependencies: [.product(name: "S2Scope", package: "S2Scope")]),
        // package-benchmark finds its suites under Benchmarks/<target>/.
        .executableTarget(
            name: "EngineBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "S2Scope", package: "S2Scope"),
            ],
            path: "Benchmarks/EngineBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
