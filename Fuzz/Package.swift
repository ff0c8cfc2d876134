// swift-tools-version:6.0
// libFuzzer targets for S2Scope. A separate package: a fuzz target inside the main package
// breaks `swift build`. Build and run with `make fuzz` or `scripts/fuzz.sh` (see there):
//   swift build -c debug -Xswiftc -sanitize=fuzzer,address
// One executable per target; each also writes its own seed corpus (`--make-seeds DIR`).
import PackageDescription

let fuzzTargets = ["decode", "reassembly", "xmpp", "pipeline"]

let package = Package(
    name: "S2ScopeFuzz",
    dependencies: [.package(name: "S2Scope", path: "..")],
    targets: [
        .target(name: "CFuzzDriver"),
        .target(name: "FuzzTargets", dependencies: ["CFuzzDriver", .product(name: "S2Scope", package: "S2Scope")]),
    ] + fuzzTargets.map {
        .executableTarget(name: "fuzz-\($0)", dependencies: ["FuzzTargets"])
    },
    swiftLanguageModes: [.v6]
)
