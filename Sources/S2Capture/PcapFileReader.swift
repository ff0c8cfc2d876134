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
