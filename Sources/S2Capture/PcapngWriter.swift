import S2Model

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Writes a pcapng file (draft-ietf-opsawg-pcapng) whose packets can carry comments: one Section
/// Header Block, one Interface Description Block per interface (each with its own link type,
/// snap length and timestamp resolution) and one Enhanced Packet Block per frame, with an
/// `opt_comment` option per comment. Wireshark and tshark show the comments as `frame.comment`.
///
/// libpcap writes pcap only, so the blocks are laid out here. Every block is little-endian (the
/// Section Header's byte-order magic says so), its body and every option value padded to 32 bits,
/// and its total length written before and after it.
public final class PcapngWriter {
    /// One capture interface: frames written on it keep its link type and snap length.
    public struct Interface: Sendable, Equatable {
        /// libpcap's DLT value (LINKTYPE_ on disk is the same number for every type S2Scope reads).
        public var linkType: Int32
        /// 0: no limit.
        public var snapLength: Int
        /// Timestamps in nanoseconds (`if_tsresol` 9) rather than microseconds (6).
        public var nanosecondTimestamps: Bool
        public var name: String?
        public var description: String?

        public init(linkType: Int32, snapLength: Int, nanosecondTimestamps: Bool, name: String? = nil, description: String? = nil) {
            self.linkType = linkType
            self.snapLength = snapLength
            self.nanosecondTimestamps = nanosecondTimestamps
            self.name = name
            self.description = description
        }
    }

    public let path: String
    public private(set) var interfaces: [Interface] = []
    public private(set) var packetsWritten = 0
    public private(set) var commentsWritten = 0
    private var file: UnsafeMutablePointer<FILE>?

    /// Creates (or truncates) `path` and writes the Section Header Block, naming `application`
    /// (`shb_userappl`). Throws `CaptureError` when the file cannot be created.
    public init(path: String, application: String) throws {
        self.path = path
        guard let f = fopen(path, "w") else {
            throw CaptureError("\(path): cannot write the capture (\(String(cString: strerror(errno))))")
        }
        file = f
        emit(PcapngWriter.sectionHeaderBlock(application: application))
    }

    deinit { try? close() }

    /// Writes an Interface Description Block; returns the interface's number for `write`.
    @discardableResult
    public func addInterface(_ interface: Interface) -> Int {
        interfaces.append(interface)
        emit(PcapngWriter.interfaceDescriptionBlock(interface))
        return interfaces.count - 1
    }

    /// Writes one frame on interface `interface` as an Enhanced Packet Block, with one
    /// `opt_comment` per entry of `comments`.
    public func write(interface: Int, bytes: UnsafeRawBufferPointer, wireLength: Int, time: Timestamp, comments: [String] = []) {
        guard interfaces.indices.contains(interface) else { return }
        let block = PcapngWriter.enhancedPacketBlock(interface: interface, nanosecondTimestamps: interfaces[interface].nanosecondTimestamps,
                                                     bytes: bytes, wireLength: wireLength, time: time, comments: comments)
        emit(block)
        packetsWritten += 1
        commentsWritten += comments.count
    }

    /// Flushes and closes the file; throws when the data could not be written.
    public func close() throws {
        guard let f = file else { return }
        file = nil
        let failed = fflush(f) != 0 || ferror(f) != 0
        if fclose(f) != 0 || failed { throw CaptureError("\(path): writing the capture failed") }
    }

    private func emit(_ block: [UInt8]) {
        guard let f = file else { return }
        _ = block.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
    }

    // MARK: - Blocks

    static let sectionHeaderType: UInt32 = 0x0A0D_0D0A
    static let interfaceDescriptionType: UInt32 = 0x0000_0001
    static let enhancedPacketType: UInt32 = 0x0000_0006
    static let byteOrderMagic: UInt32 = 0x1A2B_3C4D

    /// Option codes (draft-ietf-opsawg-pcapng §3.5, §4.1, §4.2).
    static let optEndOfOptions: UInt16 = 0
    static let optComment: UInt16 = 1
    static let shbUserApplication: UInt16 = 4
    static let ifName: UInt16 = 2
    static let ifDescription: UInt16 = 3
    static let ifTimestampResolution: UInt16 = 9

    /// An option value is at most 65,535 bytes (its length is 16 bits); longer text is cut at a
    /// character boundary.
    static let maxOptionBytes = 65_535

    /// Section Header Block: byte-order magic, version 1.0, section length unknown (-1).
    public static func sectionHeaderBlock(application: String) -> [UInt8] {
        var body: [UInt8] = []
        put32(&body, byteOrderMagic)
        put16(&body, 1)
        put16(&body, 0)
        put64(&body, UInt64.max)  // -1: not given
        var options: [(UInt16, [UInt8])] = []
        if !application.isEmpty { options.append((shbUserApplication, utf8(application))) }
        appendOptions(&body, options)
        return block(sectionHeaderType, body)
    }

    /// Interface Description Block: link type, snap length, `if_tsresol` (and name/description).
    public static func interfaceDescriptionBlock(_ i: Interface) -> [UInt8] {
        var body: [UInt8] = []
        put16(&body, UInt16(truncatingIfNeeded: i.linkType))
        put16(&body, 0)
        put32(&body, UInt32(clamping: max(i.snapLength, 0)))
        var options: [(UInt16, [UInt8])] = []
        if let n = i.name, !n.isEmpty { options.append((ifName, utf8(n))) }
        if let d = i.description, !d.isEmpty { options.append((ifDescription, utf8(d))) }
        options.append((ifTimestampResolution, [i.nanosecondTimestamps ? 9 : 6]))
        appendOptions(&body, options)
        return block(interfaceDescriptionType, body)
    }

    /// Enhanced Packet Block: interface, 64-bit timestamp in the interface's unit (upper word
    /// first), captured and original length, the bytes padded to 32 bits, the comments.
    public static func enhancedPacketBlock(interface: Int, nanosecondTimestamps: Bool, bytes: UnsafeRawBufferPointer,
                                           wireLength: Int, time: Timestamp, comments: [String]) -> [UInt8] {
        var body: [UInt8] = []
        body.reserveCapacity(28 + bytes.count + comments.reduce(0) { $0 + $1.utf8.count + 8 })
        put32(&body, UInt32(truncatingIfNeeded: interface))
        // Timestamps before 1970 do not exist in pcapng (the field is unsigned): written as 0.
        let nanoseconds = UInt64(clamping: max(time.totalNanoseconds, 0))
        let units = nanosecondTimestamps ? nanoseconds : nanoseconds / 1_000
        put32(&body, UInt32(truncatingIfNeeded: units >> 32))
        put32(&body, UInt32(truncatingIfNeeded: units))
        put32(&body, UInt32(clamping: bytes.count))
        put32(&body, UInt32(clamping: max(wireLength, bytes.count)))
        body.append(contentsOf: bytes)
        pad(&body)
        appendOptions(&body, comments.map { (optComment, utf8($0)) })
        return block(enhancedPacketType, body)
    }

    /// Type, total length, body (already a multiple of 4 bytes), total length again.
    static func block(_ type: UInt32, _ body: [UInt8]) -> [UInt8] {
        let total = UInt32(12 + body.count)
        var out: [UInt8] = []
        out.reserveCapacity(Int(total))
        put32(&out, type)
        put32(&out, total)
        out.append(contentsOf: body)
        put32(&out, total)
        return out
    }

    /// Each option: code, value length, value padded to 32 bits; then `opt_endofopt` (none at
    /// all when there is no option).
    static func appendOptions(_ out: inout [UInt8], _ options: [(UInt16, [UInt8])]) {
        guard !options.isEmpty else { return }
        for (code, value) in options {
            put16(&out, code)
            put16(&out, UInt16(value.count))
            out.append(contentsOf: value)
            pad(&out)
        }
        put16(&out, optEndOfOptions)
        put16(&out, 0)
    }

    /// The UTF-8 bytes of `s`, cut to at most `maxOptionBytes` without splitting a character.
    static func utf8(_ s: String) -> [UInt8] {
        var bytes = Array(s.utf8)
        guard bytes.count > maxOptionBytes else { return bytes }
        var end = maxOptionBytes
        while end > 0 && bytes[end] & 0xC0 == 0x80 { end -= 1 }  // bytes[end] starts the character cut off
        bytes.removeSubrange(end...)
        return bytes
    }

    static func pad(_ out: inout [UInt8]) {
        while out.count % 4 != 0 { out.append(0) }
    }

    static func put16(_ out: inout [UInt8], _ v: UInt16) {
        out.append(UInt8(truncatingIfNeeded: v))
        out.append(UInt8(truncatingIfNeeded: v >> 8))
    }

    static func put32(_ out: inout [UInt8], _ v: UInt32) {
        for k in 0..<4 { out.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(k)))) }
    }

    static func put64(_ out: inout [UInt8], _ v: UInt64) {
        for k in 0..<8 { out.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(k)))) }
    }
}
