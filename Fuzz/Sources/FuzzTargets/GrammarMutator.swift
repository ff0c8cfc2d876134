#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import CFuzzDriver
import S2Synth

/// Structure-aware mutations: random bytes rarely get past a link header, so half of the
/// mutations of the `decode` and `pipeline` inputs splice in frames built by `FrameGrammar`
/// (VLAN stacks, IPv4 options and fragments, IPv6 extension chains with atomic and real
/// fragments and AH, TCP option soup, lengths that lie both ways, cuts at every layer); the
/// other half are libFuzzer's own (with the target's dictionary), which then mutate those frames
/// further. Exported as `LLVMFuzzerCustomMutator` by the two targets' `main.swift`.
public enum GrammarMutator {
    /// `S2SCOPE_FUZZ_BASELINE=1`: libFuzzer's mutations only and no grammar seeds, to measure what
    /// the grammar adds (coverage after equal time) on the same code.
    public static let baseline = getenv("S2SCOPE_FUZZ_BASELINE").map { String(cString: $0) == "1" } ?? false

    /// `decode` inputs are records `[selector][length LE16][bytes]` (see `DecodeFuzz`).
    public static func decode(_ data: UnsafeMutablePointer<UInt8>?, _ size: Int, _ maxSize: Int, _ seed: UInt32) -> Int {
        guard let data, seed & 1 == 1, !baseline else { return LLVMFuzzerMutate(data, size, maxSize) }
        let input = Array(UnsafeBufferPointer(start: data, count: size))
        let sel = supported[Int(seed >> 1) % supported.count]
        var g = FrameGrammar(seed: UInt64(seed))
        let group = g.next(linkType: DecodeFuzz.linkTypes[sel])
        var records: [UInt8] = []
        for f in group {
            let n = min(f.bytes.count, 0xffff)
            records += [UInt8(sel) | UInt8((seed >> 8) & 0x10), UInt8(n & 0xff), UInt8(n >> 8)] + f.bytes.prefix(n)
        }
        // Insert at a record boundary: the frames before keep their meaning.
        let boundaries = recordBoundaries(input)
        let at = boundaries[Int(seed >> 4) % boundaries.count]
        let out = Array(input[..<at] + records + input[at...]).prefix(maxSize)
        out.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: out.count) }
        return out.count
    }

    /// Selectors of `DecodeFuzz.linkTypes` the grammar builds frames for.
    static let supported = DecodeFuzz.linkTypes.indices.filter { FrameGrammar.linkTypes.contains(DecodeFuzz.linkTypes[$0]) }

    /// Offsets where a `decode` record starts (and the end).
    static func recordBoundaries(_ b: [UInt8]) -> [Int] {
        var out = [0]
        var o = 0
        while o + 3 <= b.count {
            let n = Int(b[o + 1]) | Int(b[o + 2]) << 8
            o += 3 + n
            if o <= b.count { out.append(o) }
        }
        return out
    }

    /// `pipeline` inputs are capture files: classic pcap gets grammar frames of its own link type
    /// appended as records; anything else gets libFuzzer's mutations.
    public static func pipeline(_ data: UnsafeMutablePointer<UInt8>?, _ size: Int, _ maxSize: Int, _ seed: UInt32) -> Int {
        guard let data, seed & 1 == 1, size >= 24, !baseline else { return LLVMFuzzerMutate(data, size, maxSize) }
        let b = UnsafeBufferPointer(start: data, count: size)
        let le: Bool
        switch (b[0], b[1], b[2], b[3]) {
        case (0xd4, 0xc3, 0xb2, 0xa1), (0x4d, 0x3c, 0xb2, 0xa1): le = true
        case (0xa1, 0xb2, 0xc3, 0xd4), (0xa1, 0xb2, 0x3c, 0x4d): le = false
        default: return LLVMFuzzerMutate(data, size, maxSize)
        }
        func u32(_ o: Int) -> UInt32 {
            let v = (0..<4).map { UInt32(b[o + $0]) }
            return le ? v[0] | v[1] << 8 | v[2] << 16 | v[3] << 24 : v[3] | v[2] << 8 | v[1] << 16 | v[0] << 24
        }
        func put32(_ v: UInt32, _ out: inout [UInt8]) {
            let bytes = [UInt8(v & 0xff), UInt8(v >> 8 & 0xff), UInt8(v >> 16 & 0xff), UInt8(v >> 24)]
            out += le ? bytes : bytes.reversed()
        }
        let dlt = Int32(bitPattern: u32(20) & 0x0fff_ffff)
        guard FrameGrammar.linkTypes.contains(dlt) else { return LLVMFuzzerMutate(data, size, maxSize) }
        var g = FrameGrammar(seed: UInt64(seed))
        var records: [UInt8] = []
        // After the last complete record (or the header): keep the frames before it readable.
        var o = 24, lastSeconds: UInt32 = 1_700_000_000
        while o + 16 <= size {
            let caplen = Int(u32(o + 8))
            guard caplen <= size - o - 16 else { break }
            lastSeconds = u32(o)
            o += 16 + caplen
        }
        for _ in 0..<(1 + Int(seed >> 8) % 3) {
            for f in g.next(linkType: dlt) {
                put32(lastSeconds, &records)
                put32(0, &records)
                put32(UInt32(f.bytes.count), &records)
                put32(UInt32(f.wireLength), &records)
                records += f.bytes
            }
        }
        let out = (Array(b[..<o]) + records).prefix(maxSize)
        out.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: out.count) }
        return out.count
    }
}
