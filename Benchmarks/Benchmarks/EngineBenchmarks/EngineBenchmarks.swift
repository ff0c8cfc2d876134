// The analysis engine under package-benchmark: every allocation (malloc interposer), instruction
// (hardware counter, where the machine has one) and wall second of one analysis of a capture that
// is held in memory, so neither the disk nor libpcap is measured. `make bench` runs it on a capture
// of a few MB from s2scope-gen and divides by the capture's size to report per-MB figures.
//
//   S2SCOPE_BENCH_CAPTURE=FILE.pcap   the capture (classic pcap, any byte order; required)
//   S2SCOPE_BENCH_THREADS="1 2"       EngineConfiguration.threads of the `analyze` benchmarks
//   S2SCOPE_BENCH_ITERATIONS=5        measured iterations of each benchmark (after one warm-up)
//
//   analyze threads=N   Engine(threads: N): process every frame, finish (the whole analysis, as
//                       `s2scope analyze` does it, without reading the file or writing the report)
//   json report         JSONReport.write of that analysis' report (what `--format json` adds)
import Benchmark
import S2Engine
import S2Model
import S2Report

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// One frame of the capture: where its bytes are in `Capture.bytes` and its record header.
struct Record: Sendable {
    var offset: Int
    var capturedLength: Int
    var wireLength: Int
    var time: Timestamp
}

/// A classic pcap file read whole into memory and split into records once.
struct Capture: Sendable {
    let path: String
    let bytes: [UInt8]
    let linkType: Int32
    let records: [Record]

    static func fail(_ message: String) -> Never {
        fputs("EngineBenchmarks: \(message)\n", stderr)
        exit(2)
    }

    static func load(path: String) -> Capture {
        guard let f = fopen(path, "rb") else { fail("\(path): cannot open") }
        defer { fclose(f) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = fread(&chunk, 1, chunk.count, f)
            if n <= 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        guard bytes.count >= 24 else { fail("\(path): not a pcap file (too short)") }
        func u32(_ at: Int, _ swapped: Bool) -> UInt32 {
            let v = UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24
            return swapped ? v.byteSwapped : v
        }
        let magic = u32(0, false)
        let swapped: Bool
        let nanosecond: Bool
        switch magic {
        case 0xa1b2_c3d4: (swapped, nanosecond) = (false, false)
        case 0xa1b2_3c4d: (swapped, nanosecond) = (false, true)
        case 0xd4c3_b2a1: (swapped, nanosecond) = (true, false)
        case 0x4d3c_b2a1: (swapped, nanosecond) = (true, true)
        default: fail("\(path): not a classic pcap file (magic \(String(magic, radix: 16))); pcapng is not read here")
        }
        let linkType = Int32(bitPattern: u32(20, swapped) & 0x0fff_ffff)
        var records: [Record] = []
        var at = 24
        while at + 16 <= bytes.count {
            let seconds = Int64(u32(at, swapped))
            let fraction = u32(at + 4, swapped)
            let captured = Int(u32(at + 8, swapped))
            let wire = Int(u32(at + 12, swapped))
            guard at + 16 + captured <= bytes.count else { break }  // cut short: the rest is not a record
            let nanoseconds = nanosecond ? Int32(clamping: fraction) : Int32(clamping: Int64(fraction) * 1000)
            records.append(Record(offset: at + 16, capturedLength: captured, wireLength: wire,
                                  time: Timestamp(seconds: seconds, nanoseconds: nanoseconds)))
            at += 16 + captured
        }
        guard !records.isEmpty else { fail("\(path): no packets") }
        return Capture(path: path, bytes: bytes, linkType: linkType, records: records)
    }

    /// The whole analysis of the capture, as `s2scope analyze` runs it after opening the file.
    func analyse(threads: Int) -> AnalysisReport {
        var configuration = EngineConfiguration()
        configuration.threads = threads
        let engine = Engine(configuration: configuration)
        bytes.withUnsafeBytes { all in
            for (i, r) in records.enumerated() {
                engine.process(UnsafeRawBufferPointer(rebasing: all[r.offset..<(r.offset + r.capturedLength)]),
                               linkType: linkType,
                               frame: FrameRef(input: 0, number: i + 1, time: r.time),
                               wireLength: r.wireLength)
            }
        }
        return engine.finish()
    }
}

func environment(_ name: String) -> String? {
    guard let v = getenv(name) else { return nil }
    let s = String(cString: v)
    return s.isEmpty ? nil : s
}

/// Counts the report's bytes so that writing it cannot be optimised away.
final class ByteCounter {
    var bytes = 0
}

let benchmarks: @Sendable () -> Void = {
    guard let path = environment("S2SCOPE_BENCH_CAPTURE") else {
        Capture.fail("set S2SCOPE_BENCH_CAPTURE to a pcap file (make bench makes one with s2scope-gen)")
    }
    let capture = Capture.load(path: path)
    let threadCounts = (environment("S2SCOPE_BENCH_THREADS") ?? "1 2").split(separator: " ").compactMap { Int($0) }
    let iterations = Int(environment("S2SCOPE_BENCH_ITERATIONS") ?? "") ?? 5

    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .cpuTotal, .instructions, .mallocCountTotal, .mallocBytesCount, .peakMemoryResident],
        timeUnits: .milliseconds,
        warmupIterations: 1,
        scalingFactor: .one,
        maxDuration: .seconds(600),
        maxIterations: iterations
    )

    for threads in threadCounts {
        Benchmark("analyze threads=\(threads)") { benchmark in
            blackHole(capture.analyse(threads: threads).statistics.packets)
        }
    }

    Benchmark("json report") { benchmark in
        let report = capture.analyse(threads: 1)
        let counter = ByteCounter()
        benchmark.startMeasurement()
        JSONReport.write(report) { counter.bytes += $0.utf8.count }
        benchmark.stopMeasurement()
        blackHole(counter.bytes)
    }
}
