@preconcurrency import CPcap
import S2Model

#if canImport(Glibc)
import Glibc
#endif

/// On-disk capture formats libpcap reads.
public enum CaptureFormat: String, Sendable {
    case pcap, pcapng
}

/// A capture input could not be opened or is not a capture at all (exit status 2).
public struct CaptureError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// One captured frame, with its bytes borrowed from libpcap for the duration of a callback.
public struct CapturedPacket {
    public var frame: FrameRef
    public var linkType: Int32
    /// The captured bytes (`caplen` of them); only valid inside the callback.
    public var bytes: UnsafeRawBufferPointer
    /// The frame's length on the wire; larger than `bytes.count` when the snap length cut it.
    public var wireLength: Int
}

/// How a read loop ended.
public enum ReadEnd: Sendable, Equatable {
    /// The file was read to its end.
    case endOfFile
    /// The consumer asked to stop.
    case stopped
    /// The file ends in the middle of a record (or is otherwise damaged after this point);
    /// everything before was delivered.
    case truncated(String)
}

/// Link-layer type names as libpcap spells them (`EN10MB`, `LINUX_SLL2`, …).
public func linkTypeName(_ dlt: Int32) -> String {
    if let p = pcap_datalink_val_to_name(dlt) { return String(cString: p) }
    return "DLT_\(dlt)"
}

/// Reads a pcap or pcapng file (or standard input, `-`) through libpcap, frame by frame.
///
/// Frames are numbered from 1 as Wireshark numbers them. A BPF filter, if any, is applied
/// here with `pcap_offline_filter` rather than `pcap_setfilter`, so that frames it rejects
/// still count and frame numbers stay Wireshark's.
public final class PcapFileReader {
    public let path: String
    public let inputIndex: Int
    public let format: CaptureFormat
    public let linkType: Int32
    public let snapLength: Int
    /// Size of the file in bytes, or nil for standard input.
    public let fileSize: Int64?
    /// Whether the file records timestamps finer than microseconds (a nanosecond pcap, or a
    /// pcapng whose first interface has such an `if_tsresol`). libpcap hands every timestamp over
    /// in nanoseconds either way; this is what an export keeps.
    public let nanosecondTimestamps: Bool
    public private(set) var framesRead = 0
    public private(set) var bytesRead: Int64 = 0

    private var handle: OpaquePointer?
    private var program = bpf_program()
    private var hasProgram = false

    /// Opens `path` (`-` = stdin). Throws `CaptureError` with a one-line reason when the file is
    /// missing, unreadable, empty, or not a capture, or when `filter` does not compile.
    public init(path: String, inputIndex: Int, filter: String? = nil) throws {
        self.path = path
        self.inputIndex = inputIndex
        var size: Int64? = nil
        if path != "-" {
            var st = stat()
            guard stat(path, &st) == 0 else {
                throw CaptureError("\(path): \(String(cString: strerror(errno)))")
            }
            if (st.st_mode & S_IFMT) == S_IFDIR { throw CaptureError("\(path): is a directory, not a capture file") }
            guard access(path, R_OK) == 0 else {
                throw CaptureError("\(path): \(String(cString: strerror(errno)))")
            }
            if st.st_size == 0 { throw CaptureError("\(path): empty file, not a pcap or pcapng capture") }
            size = Int64(st.st_size)
        }
        fileSize = size
        nanosecondTimestamps = path == "-" ? false : PcapFileReader.recordsNanoseconds(path: path)
        var errbuf = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE) + 1)
        guard let h = pcap_open_offline_with_tstamp_precision(path, UInt32(PCAP_TSTAMP_PRECISION_NANO), &errbuf) else {
            let reason = errbuf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            throw CaptureError("\(path == "-" ? "standard input" : path): not a readable pcap or pcapng capture (\(PcapFileReader.explain(reason)))")
        }
        handle = h
        linkType = pcap_datalink(h)
        snapLength = Int(pcap_snapshot(h))
        // libpcap reports pcapng files with the section header's version, 1.0; pcap files are 2.x.
        format = pcap_major_version(h) == 1 ? .pcapng : .pcap
        if let filter, !filter.isEmpty {
            if pcap_compile(h, &program, filter, 1, PCAP_NETMASK_UNKNOWN) != 0 {
                let reason = String(cString: pcap_geterr(h))
                pcap_close(h)
                handle = nil
                throw CaptureError("invalid --filter expression '\(filter)': \(reason)")
            }
            hasProgram = true
        }
    }

    deinit {
        if hasProgram { pcap_freecode(&program) }
        if let handle { pcap_close(handle) }
    }

    private static func explain(_ reason: String) -> String {
        if reason.contains("unknown file format") { return "unknown file format" }
        return reason
    }

    /// Reads the file's head: the pcap magic, or the first Interface Description Block's
    /// `if_tsresol` option (draft-ietf-opsawg-pcapng §4.2; absent = microseconds). Every length
    /// is checked against the bytes read; anything unexpected means microseconds.
    static func recordsNanoseconds(path: String) -> Bool {
        guard let f = fopen(path, "r") else { return false }
        defer { fclose(f) }
        var head = [UInt8](repeating: 0, count: 65_536)
        let n = head.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, f) }
        head.removeSubrange(n...)
        func u16(_ at: Int, _ big: Bool) -> Int? {
            guard at >= 0, at + 2 <= head.count else { return nil }
            return big ? Int(head[at]) << 8 | Int(head[at + 1]) : Int(head[at + 1]) << 8 | Int(head[at])
        }
        func u32(_ at: Int, _ big: Bool) -> Int? {
            guard let hi = u16(big ? at : at + 2, big), let lo = u16(big ? at + 2 : at, big) else { return nil }
            return hi << 16 | lo
        }
        guard let magic = u32(0, false) else { return false }
        if magic == 0xA1B2_3C4D || magic == 0x4D3C_B2A1 { return true }  // nanosecond pcap, either byte order
        guard magic == 0x0A0D_0D0A, let bom = u32(8, false) else { return false }
        let big = bom == 0x4D3C_2B1A
        guard big || bom == 0x1A2B_3C4D, let shbLength = u32(4, big), shbLength >= 28, shbLength % 4 == 0 else { return false }
        // The first block after the section header; only an Interface Description Block says.
        let idb = shbLength
        guard u32(idb, big) == 1, let length = u32(idb + 4, big), length >= 20 else { return false }
        let end = idb + length - 4
        var at = idb + 16
        while at + 4 <= end, let code = u16(at, big), let size = u16(at + 2, big), code != 0 {
            if code == 9, size == 1, at + 5 <= head.count {
                let v = head[at + 4]
                return v & 0x80 == 0 ? v > 6 : (v & 0x7F) > 19  // finer than 10^-6 (or 2^-19) s
            }
            at += 4 + (size + 3) & ~3
        }
        return false
    }

    /// Bytes of the file consumed so far (for progress), when reading a regular file.
    public var filePosition: Int64? {
        guard let handle, path != "-", let f = pcap_file(handle) else { return nil }
        return Int64(ftello(f))
    }

    /// Delivers every frame (that passes the filter) to `body`; `body` returns false to stop.
    public func read(_ body: (CapturedPacket) -> Bool) -> ReadEnd {
        guard let handle else { return .endOfFile }
        var header: UnsafeMutablePointer<pcap_pkthdr>? = nil
        var data: UnsafePointer<UInt8>? = nil
        while true {
            let rc = pcap_next_ex(handle, &header, &data)
            if rc == 1, let hdr = header, let d = data {
                framesRead += 1
                let caplen = Int(hdr.pointee.caplen)
                bytesRead += Int64(caplen) + 16
                if hasProgram && pcap_offline_filter(&program, hdr, d) == 0 { continue }
                // A damaged record's sub-second field is carried into the seconds (no Int32 trap).
                let ts = Timestamp(seconds: Int64(hdr.pointee.ts.tv_sec), subsecondNanoseconds: Int64(hdr.pointee.ts.tv_usec))
                let packet = CapturedPacket(frame: FrameRef(input: inputIndex, number: framesRead, time: ts),
                                            linkType: linkType,
                                            bytes: UnsafeRawBufferPointer(start: d, count: caplen),
                                            wireLength: Int(hdr.pointee.len))
                if !body(packet) { return .stopped }
            } else if rc == -2 || rc == PCAP_ERROR_BREAK {
                return .endOfFile
            } else if rc == 0 {
                continue  // only live captures time out
            } else {
                let reason = String(cString: pcap_geterr(handle))
                return .truncated(reason)
            }
        }
    }
}
