/// A bounds-checked, read-only view of bytes that came from the network: captured frames,
/// stream bytes, TLS records, files S2Scope did not write.
///
/// Every read and every slice checks its bounds and returns nil when they fall outside the view.
/// A length field on the wire can therefore neither make a parser trap (Swift cannot catch a
/// trap: one frame would end a live sensor) nor make it read outside the buffer (an
/// `UnsafeRawBufferPointer` subscript is unchecked in release builds). Parsers of untrusted bytes
/// read through this type and `WireReader`; the raw loads and pointer arithmetic on wire bytes
/// live here, and nowhere else.
///
/// Offsets are relative to the start of the view. Multi-byte reads are big-endian (network
/// order) unless their name says otherwise. The view is two words, borrows its bytes (valid as
/// long as the buffer it was made from) and allocates nothing: creating, slicing and reading
/// cost a comparison or two each.
@frozen
public struct WireBytes {
    @usableFromInline let base: UnsafeRawBufferPointer

    /// A view of all of `bytes`.
    @inlinable public init(_ bytes: UnsafeRawBufferPointer) { base = bytes }

    /// A view of no bytes.
    @inlinable public init() { base = UnsafeRawBufferPointer(start: nil, count: 0) }

    @inlinable public var count: Int { base.count }
    @inlinable public var isEmpty: Bool { base.isEmpty }

    /// The bytes as a buffer, for whole-buffer consumers (`String(decoding:as:)`, `copyMemory`,
    /// C calls, `Array(_:)`). Never subscript it: read through the view.
    @inlinable public var buffer: UnsafeRawBufferPointer { base }

    /// True when `[offset, offset + length)` lies inside the view. Never overflows: `length` is
    /// compared with what is left after `offset`, not added to it.
    @inlinable
    public func contains(offset: Int, length: Int) -> Bool {
        offset >= 0 && length >= 0 && offset <= base.count && length <= base.count - offset
    }

    // MARK: Reads (nil past the end)

    @inlinable
    public func u8(_ offset: Int) -> UInt8? {
        guard offset >= 0 && offset < base.count else { return nil }
        return base.load(fromByteOffset: offset, as: UInt8.self)
    }

    @inlinable
    public func be16(_ offset: Int) -> UInt16? {
        guard contains(offset: offset, length: 2) else { return nil }
        return UInt16(bigEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    /// A 24-bit big-endian value (TLS handshake lengths).
    @inlinable
    public func be24(_ offset: Int) -> UInt32? {
        guard contains(offset: offset, length: 3) else { return nil }
        return UInt32(base.load(fromByteOffset: offset, as: UInt8.self)) << 16
            | UInt32(UInt16(bigEndian: base.loadUnaligned(fromByteOffset: offset + 1, as: UInt16.self)))
    }

    @inlinable
    public func be32(_ offset: Int) -> UInt32? {
        guard contains(offset: offset, length: 4) else { return nil }
        return UInt32(bigEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    @inlinable
    public func be64(_ offset: Int) -> UInt64? {
        guard contains(offset: offset, length: 8) else { return nil }
        return UInt64(bigEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// A 32-bit little-endian value (DLT_NULL headers written on little-endian hosts).
    @inlinable
    public func le32(_ offset: Int) -> UInt32? {
        guard contains(offset: offset, length: 4) else { return nil }
        return UInt32(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    /// A 64-bit little-endian value (S2Scope's own archive records).
    @inlinable
    public func le64(_ offset: Int) -> UInt64? {
        guard contains(offset: offset, length: 8) else { return nil }
        return UInt64(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    // MARK: Slices

    /// The bytes `[from, to)`; nil unless `0 <= from <= to <= count`.
    @inlinable
    public func slice(from: Int, to: Int) -> WireBytes? {
        guard from >= 0 && from <= to && to <= base.count else { return nil }
        return WireBytes(uncheckedFrom: from, count: to - from, of: base)
    }

    /// `length` bytes from `offset`; nil unless all of them are in the view.
    @inlinable
    public func slice(at offset: Int, length: Int) -> WireBytes? {
        guard contains(offset: offset, length: length) else { return nil }
        return WireBytes(uncheckedFrom: offset, count: length, of: base)
    }

    /// The bytes from `offset` to the end; nil unless `0 <= offset <= count`.
    @inlinable
    public func suffix(from offset: Int) -> WireBytes? {
        guard offset >= 0 && offset <= base.count else { return nil }
        return WireBytes(uncheckedFrom: offset, count: base.count - offset, of: base)
    }

    /// At most the first `maxLength` bytes (all of them when there are fewer; none for a
    /// negative length). Cannot fail, like `Collection.prefix`.
    @inlinable
    public func prefix(_ maxLength: Int) -> WireBytes {
        WireBytes(uncheckedFrom: 0, count: Swift.max(0, Swift.min(maxLength, base.count)), of: base)
    }

    /// The view without its first `k` bytes (empty when there are fewer; all for a negative `k`).
    /// Cannot fail, like `Collection.dropFirst`.
    @inlinable
    public func dropFirst(_ k: Int) -> WireBytes {
        let k = Swift.max(0, Swift.min(k, base.count))
        return WireBytes(uncheckedFrom: k, count: base.count - k, of: base)
    }

    /// The only place that moves a pointer into wire bytes; every caller has checked
    /// `0 <= offset`, `0 <= count` and `offset + count <= base.count`.
    @inlinable
    init(uncheckedFrom offset: Int, count: Int, of base: UnsafeRawBufferPointer) {
        // An empty buffer may have a nil base address (then offset and count are 0).
        self.base = UnsafeRawBufferPointer(start: base.baseAddress.map { $0 + offset }, count: count)
    }

    // MARK: Searches and comparisons

    /// The offset of the first `byte` at or after `from`, or nil.
    @inlinable
    public func firstOffset(of byte: UInt8, from: Int = 0) -> Int? {
        var i = Swift.max(0, from)
        while i < base.count {
            if base.load(fromByteOffset: i, as: UInt8.self) == byte { return i }
            i += 1
        }
        return nil
    }

    /// The offset of the first byte at or after `from` that satisfies `predicate`, or nil.
    @inlinable
    public func firstOffset(from: Int = 0, where predicate: (UInt8) throws -> Bool) rethrows -> Int? {
        var i = Swift.max(0, from)
        while i < base.count {
            if try predicate(base.load(fromByteOffset: i, as: UInt8.self)) { return i }
            i += 1
        }
        return nil
    }

    /// The offset of the last byte that satisfies `predicate`, or nil.
    @inlinable
    public func lastOffset(where predicate: (UInt8) throws -> Bool) rethrows -> Int? {
        var i = base.count - 1
        while i >= 0 {
            if try predicate(base.load(fromByteOffset: i, as: UInt8.self)) { return i }
            i -= 1
        }
        return nil
    }

    /// True when the bytes at `offset` are `other`, all of them inside the view.
    @inlinable
    public func matches<C: Collection<UInt8>>(_ other: C, at offset: Int) -> Bool {
        guard let s = slice(at: offset, length: other.count) else { return false }
        return s.base.elementsEqual(other)
    }

    // MARK: Copies

    /// Copies the view into `destination` at `offset`; false (and nothing copied) unless it fits.
    @inlinable
    @discardableResult
    public func copy(into destination: UnsafeMutableRawBufferPointer, at offset: Int) -> Bool {
        guard offset >= 0 && offset <= destination.count && base.count <= destination.count - offset else { return false }
        if let from = base.baseAddress, let to = destination.baseAddress, !base.isEmpty {
            (to + offset).copyMemory(from: from, byteCount: base.count)
        }
        return true
    }
}

extension WireBytes: Sequence {
    /// Iteration stays inside the view by construction.
    @inlinable public func makeIterator() -> UnsafeRawBufferPointer.Iterator { base.makeIterator() }
    @inlinable public var underestimatedCount: Int { base.count }
}

extension WireBytes: CustomStringConvertible {
    public var description: String { "WireBytes(\(count) bytes)" }
}

/// Reads a `WireBytes` front to back: fixed-size fields and length-prefixed vectors (TLS,
/// TCP options, S2Scope's archive records). A read that does not fit returns nil and leaves
/// the position where it was, so the caller decides what a short read means.
@frozen
public struct WireReader {
    public let bytes: WireBytes
    @usableFromInline var offset = 0
    /// Bytes read so far.
    @inlinable public var position: Int { offset }

    @inlinable public init(_ bytes: WireBytes) { self.bytes = bytes }
    @inlinable public init(_ buffer: UnsafeRawBufferPointer) { bytes = WireBytes(buffer) }

    /// Bytes not read yet.
    @inlinable public var remaining: Int { bytes.count - position }
    @inlinable public var isAtEnd: Bool { position >= bytes.count }
    /// The bytes not read yet (does not move).
    @inlinable public var rest: WireBytes { bytes.dropFirst(position) }

    @inlinable
    public mutating func u8() -> UInt8? {
        guard let v = bytes.u8(position) else { return nil }
        offset += 1
        return v
    }

    @inlinable
    public mutating func be16() -> UInt16? {
        guard let v = bytes.be16(position) else { return nil }
        offset += 2
        return v
    }

    @inlinable
    public mutating func be24() -> UInt32? {
        guard let v = bytes.be24(position) else { return nil }
        offset += 3
        return v
    }

    @inlinable
    public mutating func be32() -> UInt32? {
        guard let v = bytes.be32(position) else { return nil }
        offset += 4
        return v
    }

    @inlinable
    public mutating func le64() -> UInt64? {
        guard let v = bytes.le64(position) else { return nil }
        offset += 8
        return v
    }

    /// The next `length` bytes.
    @inlinable
    public mutating func bytes(_ length: Int) -> WireBytes? {
        guard let v = bytes.slice(at: position, length: length) else { return nil }
        offset += length
        return v
    }

    /// Skips `length` bytes; false (and no move) when fewer are left.
    @inlinable
    public mutating func skip(_ length: Int) -> Bool {
        bytes(length) != nil
    }

    /// A vector with a big-endian length prefix of `lengthBytes` (1, 2 or 3) bytes, as TLS
    /// writes them (RFC 8446 §3.4). Nil, without moving, when the prefix or the body does not fit.
    @inlinable
    public mutating func vector(lengthBytes: Int) -> WireBytes? {
        let n: Int
        switch lengthBytes {
        case 1: guard let v = bytes.u8(position) else { return nil }; n = Int(v)
        case 2: guard let v = bytes.be16(position) else { return nil }; n = Int(v)
        case 3: guard let v = bytes.be24(position) else { return nil }; n = Int(v)
        default: return nil
        }
        guard let body = bytes.slice(at: position + lengthBytes, length: n) else { return nil }
        offset += lengthBytes + n
        return body
    }
}

extension Array where Element == UInt8 {
    /// Calls `body` with a checked view of the array's bytes (valid only inside `body`).
    @inlinable
    public func withWireBytes<R>(_ body: (WireBytes) throws -> R) rethrows -> R {
        try withUnsafeBytes { try body(WireBytes($0)) }
    }
}

extension ArraySlice where Element == UInt8 {
    /// Calls `body` with a checked view of the slice's bytes (offset 0 is the slice's first byte).
    @inlinable
    public func withWireBytes<R>(_ body: (WireBytes) throws -> R) rethrows -> R {
        try withUnsafeBytes { try body(WireBytes($0)) }
    }
}

extension FixedWidthInteger where Self: UnsignedInteger {
    /// `self + other`, or `.max` when that overflows: for run-wide counters that add sizes taken
    /// from the wire (gap lengths, encrypted bytes), which a peer can make as large as it likes for
    /// as long as a live sensor runs.
    @inlinable
    public func saturatingAdd(_ other: Self) -> Self {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? .max : sum
    }
}
