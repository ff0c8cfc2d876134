#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Reads fuzz input front to back; every read past the end yields zeros / empty, so any byte
/// string is a valid input.
struct ByteCursor {
    let data: UnsafeRawBufferPointer
    var position = 0

    init(_ data: UnsafeRawBufferPointer) { self.data = data }

    var isAtEnd: Bool { position >= data.count }
    var remaining: Int { max(0, data.count - position) }

    mutating func u8() -> UInt8 {
        guard position < data.count else { return 0 }
        defer { position += 1 }
        return data[position]
    }

    mutating func u16() -> UInt16 { UInt16(u8()) | UInt16(u8()) << 8 }

    mutating func u32() -> UInt32 { UInt32(u16()) | UInt32(u16()) << 16 }

    /// Up to `n` bytes (fewer at the end of the input).
    mutating func bytes(_ n: Int) -> UnsafeRawBufferPointer {
        let k = min(n, remaining)
        defer { position += k }
        return UnsafeRawBufferPointer(rebasing: data[position..<(position + k)])
    }

    mutating func rest() -> UnsafeRawBufferPointer { bytes(remaining) }
}

/// A broken invariant: print it and abort, so libFuzzer records the input as a crash.
func invariant(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
               file: StaticString = #fileID, line: UInt = #line) {
    if !condition() {
        let text = "INVARIANT VIOLATED (\(file):\(line)): \(message())\n"
        fputs(text, stderr)
        abort()
    }
}

/// Touches every byte, so that AddressSanitizer sees a read of the whole buffer.
@inline(never)
func touch(_ b: UnsafeRawBufferPointer) -> UInt8 {
    var x: UInt8 = 0
    for v in b { x ^= v }
    return x
}

/// True when `s` (a rendered report) contains a raw control character other than newline/tab.
func containsRawControl(_ s: String) -> Bool {
    for u in s.utf8 where (u < 0x20 && u != 0x0a && u != 0x09) || u == 0x7f { return true }
    for u in s.unicodeScalars where u.value >= 0x80 && u.value < 0xa0 { return true }
    return false
}
