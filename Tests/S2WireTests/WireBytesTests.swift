import S2Model
import Testing

/// `WireBytes` and `WireReader` at every boundary: every read width at every offset of every
/// small buffer (and at offsets no arithmetic may wrap around), every slice of every range, views
/// of views, copies into buffers of every size. The reference is plain index arithmetic on an
/// array; the view must agree with it everywhere, and return nil exactly where it cannot.
struct WireBytesTests {
    static let sample: [UInt8] = (0..<12).map { UInt8(0xa0 + $0) }
    static let farOffsets = [Int.min, Int.min + 1, -1_000_000, Int.max - 8, Int.max - 1, Int.max]

    /// `width` bytes at `offset` of `a` as an integer, or nil when they are not all there.
    static func reference(_ a: [UInt8], _ offset: Int, _ width: Int, bigEndian: Bool = true) -> UInt64? {
        guard offset >= 0, offset <= a.count, width <= a.count - offset else { return nil }
        var v: UInt64 = 0
        for k in 0..<width { v = v << 8 | UInt64(a[offset + (bigEndian ? k : width - 1 - k)]) }
        return v
    }

    @Test func everyReadAtEveryOffsetOfEveryLength() {
        for count in 0...Self.sample.count {
            let a = Array(Self.sample.prefix(count))
            a.withWireBytes { w in
                #expect(w.count == count)
                #expect(w.isEmpty == (count == 0))
                for o in Array(-3...(count + 9)) + Self.farOffsets {
                    #expect(w.u8(o).map(UInt64.init) == Self.reference(a, o, 1), "u8 at \(o) of \(count)")
                    #expect(w.be16(o).map(UInt64.init) == Self.reference(a, o, 2), "be16 at \(o) of \(count)")
                    #expect(w.be24(o).map(UInt64.init) == Self.reference(a, o, 3), "be24 at \(o) of \(count)")
                    #expect(w.be32(o).map(UInt64.init) == Self.reference(a, o, 4), "be32 at \(o) of \(count)")
                    #expect(w.be64(o) == Self.reference(a, o, 8), "be64 at \(o) of \(count)")
                    #expect(w.le32(o).map(UInt64.init) == Self.reference(a, o, 4, bigEndian: false), "le32 at \(o) of \(count)")
                    #expect(w.le64(o) == Self.reference(a, o, 8, bigEndian: false), "le64 at \(o) of \(count)")
                    for length in [-1, 0, 1, 2, count, Int.max] {
                        let inside = o >= 0 && length >= 0 && o <= count && length <= count - o
                        #expect(w.contains(offset: o, length: length) == inside, "contains(\(o), \(length)) of \(count)")
                    }
                }
            }
        }
    }

    @Test func everySliceOfEveryRange() {
        for count in 0...7 {
            let a = Array(Self.sample.prefix(count))
            a.withWireBytes { w in
                for from in -2...(count + 2) {
                    for to in -2...(count + 2) {
                        let valid = from >= 0 && from <= to && to <= count
                        let s = w.slice(from: from, to: to)
                        #expect((s != nil) == valid, "slice \(from)..<\(to) of \(count)")
                        if let s, valid { #expect(Array(s) == Array(a[from..<to])) }
                    }
                    for length in [-1, 0, 1, 2, count - from, count - from + 1, Int.max] {
                        let valid = from >= 0 && length >= 0 && from <= count && length <= count - from
                        let s = w.slice(at: from, length: length)
                        #expect((s != nil) == valid, "slice at \(from) length \(length) of \(count)")
                        if let s, valid { #expect(Array(s) == Array(a[from..<(from + length)])) }
                    }
                    let suffix = w.suffix(from: from)
                    #expect((suffix != nil) == (from >= 0 && from <= count), "suffix from \(from) of \(count)")
                    if let suffix { #expect(Array(suffix) == Array(a[from...])) }
                    // prefix and dropFirst clamp like Collection's.
                    #expect(Array(w.prefix(from)) == Array(a.prefix(max(0, from))))
                    #expect(Array(w.dropFirst(from)) == Array(a.dropFirst(max(0, from))))
                }
                for far in Self.farOffsets {
                    #expect(w.slice(from: far, to: far) == nil || (far >= 0 && far <= count))
                    #expect(w.slice(at: far, length: 1) == nil)
                    #expect(w.slice(at: 0, length: far) == nil || (far >= 0 && far <= count))
                    #expect(w.suffix(from: far) == nil)
                    #expect(w.prefix(far).count == (far < 0 ? 0 : count))
                    #expect(w.dropFirst(far).count == (far < 0 ? count : 0))
                }
            }
        }
    }

    @Test func viewsOfViewsReadRelativeToTheirOwnStart() {
        Self.sample.withWireBytes { w in
            let inner = w.slice(from: 3, to: 9)!
            #expect(inner.count == 6)
            #expect(inner.u8(0) == Self.sample[3])
            #expect(inner.u8(5) == Self.sample[8])
            #expect(inner.u8(6) == nil, "a slice must not read its parent's bytes past its end")
            #expect(inner.u8(-1) == nil, "nor before its start")
            #expect(inner.be16(5) == nil)
            #expect(inner.slice(from: 0, to: 7) == nil)
            let innermost = inner.dropFirst(2).prefix(3)
            #expect(Array(innermost) == Array(Self.sample[5..<8]))
            #expect(innermost.be24(0) == 0xa5a6a7)
            #expect(innermost.be24(1) == nil)
        }
    }

    @Test func theEmptyViewHasNothingToRead() {
        let empty = WireBytes()
        #expect(empty.count == 0 && empty.isEmpty)
        #expect(empty.u8(0) == nil && empty.be16(0) == nil && empty.be64(0) == nil)
        #expect(empty.slice(from: 0, to: 0)?.count == 0)
        #expect(empty.slice(from: 0, to: 1) == nil)
        #expect(empty.suffix(from: 0)?.count == 0)
        #expect(empty.firstOffset(of: 0) == nil && empty.lastOffset(where: { _ in true }) == nil)
        #expect(Array(empty).isEmpty)
        let dst = UnsafeMutableRawBufferPointer.allocate(byteCount: 0, alignment: 1)
        defer { dst.deallocate() }
        #expect(empty.copy(into: dst, at: 0))
        #expect(!empty.copy(into: dst, at: 1))
    }

    @Test func copiesFitOrDoNothing() {
        Self.sample.prefix(5).withWireBytes { w in
            for size in 0...8 {
                for at in -1...(size + 1) {
                    let dst = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 1)
                    defer { dst.deallocate() }
                    dst.initializeMemory(as: UInt8.self, repeating: 0xee)
                    let fits = at >= 0 && at + 5 <= size
                    #expect(w.copy(into: dst, at: at) == fits, "5 bytes into \(size) at \(at)")
                    let expected = (0..<size).map { fits && $0 >= at && $0 < at + 5 ? Self.sample[$0 - at] : 0xee }
                    #expect(Array(dst) == expected, "5 bytes into \(size) at \(at)")
                }
            }
        }
    }

    @Test func searchesAndComparisonsStayInside() {
        let a: [UInt8] = [0x20, 0x3c, 0x61, 0x3c, 0x62, 0x20]
        a.withWireBytes { w in
            #expect(w.firstOffset(of: 0x3c) == 1)
            #expect(w.firstOffset(of: 0x3c, from: 2) == 3)
            #expect(w.firstOffset(of: 0x3c, from: 4) == nil)
            #expect(w.firstOffset(of: 0x3c, from: -5) == 1)
            #expect(w.firstOffset(of: 0x3c, from: Int.max) == nil)
            #expect(w.firstOffset(where: { $0 != 0x20 }) == 1)
            #expect(w.lastOffset(where: { $0 != 0x20 }) == 4)
            #expect(w.matches([0x3c, 0x62], at: 3))
            #expect(!w.matches([0x3c, 0x62], at: 1))
            #expect(!w.matches([0x20, 0x00], at: 5), "a comparison running past the end is false")
            #expect(!w.matches([0x20], at: -1))
            #expect(w.matches([UInt8](), at: 6))
            #expect(!w.matches([UInt8](), at: 7))
            #expect(!w.matches([0x20], at: Int.max))
        }
    }

    @Test func readerReadsFieldsAndVectorsAndNeverMovesOnAMiss() {
        // u8, be16, be24, be32, a 1-, 2- and 3-byte-length vector, then 2 bytes left.
        let a: [UInt8] = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a,
                          0x02, 0xaa, 0xbb, 0x00, 0x01, 0xcc, 0x00, 0x00, 0x00, 0xfe, 0xff]
        a.withWireBytes { w in
            var r = WireReader(w)
            #expect(r.u8() == 0x01)
            #expect(r.be16() == 0x0203)
            #expect(r.be24() == 0x040506)
            #expect(r.be32() == 0x0708090a)
            #expect(r.vector(lengthBytes: 1).map(Array.init) == [0xaa, 0xbb])
            #expect(r.vector(lengthBytes: 2).map(Array.init) == [0xcc])
            #expect(r.vector(lengthBytes: 3).map(Array.init) == [])
            #expect(r.position == 19 && r.remaining == 2)
            // Too short for each of these: nil, and the position stays.
            #expect(r.be24() == nil)
            #expect(r.be32() == nil)
            #expect(r.le64() == nil)
            #expect(r.bytes(3) == nil)
            #expect(r.bytes(-1) == nil)
            let skipped = r.skip(3)
            #expect(!skipped)
            #expect(r.vector(lengthBytes: 1) == nil, "length 0xfe, one byte left")
            #expect(r.vector(lengthBytes: 4) == nil, "only 1-, 2- and 3-byte lengths exist")
            #expect(r.position == 19)
            #expect(Array(r.rest) == [0xfe, 0xff])
            #expect(r.be16() == 0xfeff)
            #expect(r.isAtEnd && r.u8() == nil)
        }
        // A vector whose length prefix itself is cut.
        [0x00].withWireBytes { w in
            var r = WireReader(w)
            #expect(r.vector(lengthBytes: 2) == nil)
            #expect(r.position == 0)
        }
    }
}

struct SaturatingCounterTests {
    @Test func countersStopAtTheirLargestValue() {
        #expect(UInt64(5).saturatingAdd(7) == 12)
        #expect((UInt64.max - 3).saturatingAdd(3) == .max)
        #expect((UInt64.max - 3).saturatingAdd(4) == .max)
        #expect(UInt64.max.saturatingAdd(.max) == .max)
    }
}
