// swift-tools-version:6.0
// S2Scope — passive analyzer of XMPP server-to-server (s2s) traffic and Server Dialback.
//
// The targets form a one-way pipeline; each depends only on the layers below it, so a
// layer reaching upward does not compile:
//   S2Model ← S2Capture(CPcap) ; S2Model ← S2Wire ← S2Reassembly
//   S2Model ← S2XMPP(CExpat) ← S2Dialback ← S2Rules ← S2Report
//   S2Engine wires them all; the s2scope executable is a thin CLI over S2Engine + S2Report.
//   S2Model ← S2Metrics (SwiftNIO, swift-prometheus): the live sensor's metrics and their HTTP server.
import PackageDescription

// No unsafe flags: the S2Scope and S2XMPPStream library products must stay usable as versioned
// dependencies; speed comes from the design, not from switching checks off.
let package = Package(
    name: "S2Scope",
    products: [
        .library(name: "S2Scope", targets: ["S2Engine", "S2Report", "S2Rules", "S2Dialback", "S2XMPP",
                                            "S2Reassembly", "S2TLS", "S2Wire", "S2Capture", "S2Model", "S2Synth", "S2Facts"]),
        // Synthetic captures (transcripts → TCP/IP frames → pcap) for tests, fuzz seeds and benchmarks.
        .library(name: "S2Synth", targets: ["S2Synth"]),
        // The XMPP stream layer alone (expat push parser → stream events), for its micro-benchmark.
        .library(name: "S2XMPPStream", targets: ["S2XMPP"]),
        .executable(name: "s2scope", targets: ["s2scope"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        // X.509 certificates of TLS handshakes (S2TLS only): subject, issuer, validity, names.
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        // The metrics server of `live`: its own event loop (SwiftNIO) and the Prometheus exposition
        // (swift-prometheus, on swift-metrics' CoreMetrics).
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        .systemLibrary(name: "CPcap", pkgConfig: "libpcap", providers: [.apt(["libpcap-dev"])]),
        .systemLibrary(name: "CExpat", pkgConfig: "expat", providers: [.apt(["libexpat1-dev"])]),
        .target(name: "S2Model"),
        .target(name: "S2Capture", dependencies: ["S2Model", "CPcap"]),
        .target(name: "S2Wire", dependencies: ["S2Model"]),
        .target(name: "S2Reassembly", dependencies: ["S2Model", "S2Wire"]),
        .target(name: "S2XMPP", dependencies: ["S2Model", "CExpat"]),
        .target(name: "S2Dialback", dependencies: ["S2Model", "S2XMPP",
                                                   .product(name: "Crypto", package: "swift-crypto")]),
        .target(name: "S2Rules", dependencies: ["S2Model", "S2XMPP", "S2Dialback"]),
        .target(name: "S2Report", dependencies: ["S2Model", "S2Rules", "S2Dialback"]),
        .target(name: "S2Synth", dependencies: ["S2Model"]),
        // The facts a shard hands to the correlator (docs/FACTS.md) and the correlation of many
        // sensors' facts into one report.
        .target(name: "S2Facts", dependencies: ["S2Model", "S2XMPP", "S2Dialback", "S2Rules", "S2Report"]),
        .target(name: "S2TLS", dependencies: ["S2Model", .product(name: "Crypto", package: "swift-crypto"),
                                              .product(name: "X509", package: "swift-certificates"),
                                              .product(name: "SwiftASN1", package: "swift-asn1")]),
        .target(name: "S2Engine", dependencies: ["S2Model", "S2Capture", "S2Wire", "S2Reassembly",
                                                 "S2XMPP", "S2Dialback", "S2Rules", "S2Report", "S2Synth", "S2TLS", "S2Facts"]),
        // Prometheus metrics of a live sensor and the HTTP server that exposes them, off the capture thread.
        .target(name: "S2Metrics", dependencies: [
            "S2Model",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ]),
        .executableTarget(name: "s2scope", dependencies: [
            "S2Engine", "S2Report", "S2Capture", "S2Metrics", "S2Facts",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .testTarget(name: "S2WireTests", dependencies: ["S2Wire", "S2Capture", "S2Model"]),
        .testTarget(name: "S2CaptureTests", dependencies: ["S2Capture", "S2Model", "S2TestSupport"]),
        .testTarget(name: "S2ReassemblyTests", dependencies: ["S2Reassembly", "S2TLS", "S2Wire", "S2Capture", "S2Model", "S2Synth", "S2TestSupport"]),
        .testTarget(name: "S2XMPPTests", dependencies: ["S2XMPP", "S2Model", "S2TestSupport"]),
        .testTarget(name: "S2RulesTests", dependencies: ["S2Rules", "S2Dialback", "S2XMPP", "S2Model", "S2Engine", "S2Synth", "S2Report", "S2TestSupport"]),
        .target(name: "S2TestSupport", path: "Tests/S2TestSupport"),
        .testTarget(name: "S2EngineTests", dependencies: ["S2TestSupport", "S2Engine", "S2Report", "S2Model", "S2Rules", "S2Synth", "S2Capture", "S2Metrics"]),
        .testTarget(name: "S2FactsTests", dependencies: ["S2TestSupport", "S2Facts", "S2Model", "S2XMPP", "S2Synth"]),
        .testTarget(name: "S2ReportTests", dependencies: ["S2TestSupport", "S2Engine", "S2Report", "S2Model", "S2Rules", "S2Synth"]),
        .testTarget(name: "S2TLSTests", dependencies: ["S2TLS", "S2Engine", "S2Report", "S2Model", "S2Capture",
                                                     .product(name: "X509", package: "swift-certificates"),
                                                     .product(name: "SwiftASN1", package: "swift-asn1"),
                                                     .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(name: "S2MetricsTests", dependencies: ["S2Metrics", "S2Model"]),
        .testTarget(name: "HostileInputTests", dependencies: ["S2TestSupport", "S2Engine", "S2Report", "S2Model", "S2XMPP", "S2Synth", "S2Reassembly", "S2Wire"]),
    ],
    swiftLanguageModes: [.v6]
)
