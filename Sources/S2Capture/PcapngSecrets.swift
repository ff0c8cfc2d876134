#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import S2Model

/// The Decryption Secrets Blocks of a pcapng file (draft-ietf-opsawg-pcapng §4.7: block type
/// 0x0000000A; Secrets Type, Secrets Length, Secrets Data padded to 32 bits, options), which
/// is how `editcap --inject-secrets tls,keys.txt` and Wireshark embed a TLS key log in a
/// capture. libpcap reads such files but skips these blocks and has no API for them, so this
/// reader walks the file's blocks itself, reading only block headers and DSB bodies.
///
/// Every length comes from the file: each is checked against what is left of its block and of
/// the file before it is used. A damaged or cut file stops the walk with a note; the secrets
/// found before stay.
public enum PcapngSecrets {
    /// Secrets Type of an NSS key log (`TLSK`).
    public static let tlsKeyLog: UInt32 = 0x544C_534B

    public struct Block: Sendable, Equatable {
        public var secretsType: UInt32
        public var data: [UInt8]
        /// File offset of the block.
        public var offset: Int64
    }

    public struct Result: Sendable {
        public var blocks: [Block] = []
        /// What stopped the walk early or was skipped (a damaged block, a block too large).
        public var notes: [String] = []
    }

    static let sectionHeader: UInt32 = 0x0A0D_0D0A
    static let decryptionSecrets: UInt32 = 0x0000_000A
    static let byteOrderMagic: UInt32 = 0x1A2B_3C4D
    /// A DSB body larger than this is skipped (a TLS key log of 64 MiB covers ~400,000 sessions).
    public static let maxSecretsBytes = 64 << 20

    /// The DSBs of the pcapng file at `path`. A file that is not pcapng (a pcap, standard
    /// input) has none: the result is empty, no error.
    public static func read(path: String) -> Result {
        var result = Result()
        guard path != "-" else { return result }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return result }  // the capture reader reports why
        defer { close(fd) }
        var file = BlockFile(fd: fd)
        var bigEndian = false
        var inSection = false
        while true {
            let start = file.offset
            guard let head = file.bytes(8) else {
                if inSection && file.bytesLeftOver > 0 { result.notes.append("\(path): the pcapng file ends inside a block header at offset \(start)") }
                return result
            }
            let rawType = u32(head, 0, bigEndian: false)
            var length: UInt32
            if rawType == sectionHeader {
                // The byte-order magic decides how this section's numbers read.
                guard let bom = file.bytes(4) else {
                    result.notes.append("\(path): section header block at offset \(start) is cut short")
                    return result
                }
                if u32(bom, 0, bigEndian: false) == byteOrderMagic {
                    bigEndian = false
                } else if u32(bom, 0, bigEndian: true) == byteOrderMagic {
                    bigEndian = true
                } else {
                    result.notes.append("\(path): section header block at offset \(start) has no byte-order magic; its secrets were not read")
                    return result
                }
                inSection = true
                length = u32(head, 4, bigEndian: bigEndian)
                guard length >= 28, length % 4 == 0 else {
                    result.notes.append("\(path): section header block at offset \(start) has an impossible length \(length)")
                    return result
                }
                guard file.skip(Int64(length) - 12) else { return cut(&result, path, start) }
                continue
            }
            guard inSection else { return result }  // not pcapng (a pcap file)
            let type = u32(head, 0, bigEndian: bigEndian)
            length = u32(head, 4, bigEndian: bigEndian)
            guard length >= 12, length % 4 == 0 else {
                result.notes.append("\(path): block at offset \(start) has an impossible length \(length); the blocks after it were not searched for secrets")
                return result
            }
            let body = Int64(length) - 8
            guard type == decryptionSecrets else {
                guard file.skip(body) else { return cut(&result, path, start) }
                continue
            }
            // Secrets Type (4), Secrets Length (4), data padded to 4, options, Block Total Length (4).
            guard body >= 12 else {
                result.notes.append("\(path): decryption secrets block at offset \(start) is too short (\(length) bytes)")
                guard file.skip(body) else { return cut(&result, path, start) }
                continue
            }
            guard body - 12 <= Int64(maxSecretsBytes) else {
                result.notes.append("\(path): decryption secrets block at offset \(start) holds \(body - 12) bytes, more than the \(maxSecretsBytes >> 20) MiB read; skipped")
                guard file.skip(body) else { return cut(&result, path, start) }
                continue
            }
            guard let b = file.bytes(Int(body)) else { return cut(&result, path, start) }
            let secretsType = u32(b, 0, bigEndian: bigEndian)
            let secretsLength = Int64(u32(b, 4, bigEndian: bigEndian))
            // The data (padded) and the trailing length must fit in the block.
            guard secretsLength <= body - 12 else {
                result.notes.append("\(path): decryption secrets block at offset \(start) claims \(secretsLength) bytes of secrets in a \(length)-byte block; skipped")
                continue
            }
            guard u32(b, Int(body) - 4, bigEndian: bigEndian) == length else {
                result.notes.append("\(path): decryption secrets block at offset \(start) has a trailing length that differs from its leading one; the blocks after it were not searched for secrets")
                return result
            }
            guard let data = b.withWireBytes({ $0.slice(at: 8, length: Int(secretsLength)).map { Array($0.buffer) } }) else { continue }
            result.blocks.append(Block(secretsType: secretsType, data: data, offset: start))
        }
    }

    private static func cut(_ r: inout Result, _ path: String, _ offset: Int64) -> Result {
        r.notes.append("\(path): the pcapng file ends inside the block at offset \(offset)")
        return r
    }

    private static func u32(_ b: [UInt8], _ at: Int, bigEndian: Bool) -> UInt32 {
        // Callers pass at + 4 <= b.count (checked by the lengths read above); were one not to, the
        // checked read gives 0, a length every caller refuses, never a trap.
        let v = b.withWireBytes { $0.le32(at) } ?? 0
        return bigEndian ? v.byteSwapped : v
    }
}

/// Sequential reads and forward skips over a file descriptor through a 1 MiB buffer (the block
/// walk touches a few bytes per block; skipping inside the buffer costs nothing).
private struct BlockFile {
    let fd: Int32
    var buffer = [UInt8](repeating: 0, count: 1 << 20)
    var start = 0, end = 0
    /// File offset of `buffer[start]`.
    var offset: Int64 = 0
    var eof = false

    init(fd: Int32) { self.fd = fd }

    /// Bytes read into the buffer but not consumed (non-zero at the end: a cut block).
    var bytesLeftOver: Int { end - start }

    /// The next `n` bytes, or nil when the file ends first.
    mutating func bytes(_ n: Int) -> [UInt8]? {
        if n > buffer.count - start {
            // Move what is left to the front; grow for a large DSB body.
            let left = end - start
            if n > buffer.count { buffer.append(contentsOf: [UInt8](repeating: 0, count: n - buffer.count)) }
            buffer.withUnsafeMutableBytes { p in
                if left > 0 && start > 0 { memmove(p.baseAddress!, p.baseAddress! + start, left) }
            }
            start = 0
            end = left
        }
        while end - start < n && !eof {
            let got = buffer.withUnsafeMutableBytes { p in Glibc.read(fd, p.baseAddress! + end, p.count - end) }
            if got < 0 && errno == EINTR { continue }
            if got <= 0 { eof = true } else { end += got }
        }
        guard end - start >= n, let out = buffer.withWireBytes({ $0.slice(at: start, length: n).map { Array($0.buffer) } }) else { return nil }
        start += n
        offset += Int64(n)
        return out
    }

    /// Skips `n` bytes; false when the file ends first.
    mutating func skip(_ n: Int64) -> Bool {
        let inBuffer = Int64(end - start)
        if n <= inBuffer {
            start += Int(n)
            offset += n
            return true
        }
        let target = offset + n
        start = 0
        end = 0
        var st = stat()
        guard fstat(fd, &st) == 0, Int64(st.st_size) >= target, lseek(fd, off_t(target), SEEK_SET) == off_t(target) else {
            eof = true
            return false
        }
        offset = target
        return true
    }
}
