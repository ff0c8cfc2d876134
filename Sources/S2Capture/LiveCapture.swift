@preconcurrency import CPcap
import S2Model

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Options of a live capture handle.
public struct LiveOptions: Sendable {
    public var snapLength: Int32 = 262_144
    public var bufferSize: Int32 = 16 << 20
    public var promiscuous = true
    public var immediate = true
    public var filter: String?
    /// First wait before reopening an interface whose capture failed; doubled after each failed
    /// attempt up to `maxReopenDelay`.
    public var reopenDelay = 0.25
    public var maxReopenDelay = 5.0
    /// Seconds between checks of every interface's state (exists, same index, up, carrier).
    public var stateCheckInterval = 1.0
    public init() {}
}

/// Kernel and interface counters of one live handle.
public struct LiveStatistics: Sendable {
    public var received: UInt64 = 0
    public var dropped: UInt64 = 0
    public var interfaceDropped: UInt64 = 0
}

/// What happened to the capture of an interface, for the analysis to report.
public enum CaptureEvent: Sendable, Equatable {
    /// Capture on the interface stopped (it went down, lost its carrier, disappeared, or a read failed);
    /// `reopening` when its handle was closed and is being reopened.
    case interrupted(interface: String, reason: String, reopening: Bool)
    /// A reopen attempt failed for another reason than the interface being away (permissions, …);
    /// reported once per interruption, attempts go on.
    case reopenFailed(interface: String, reason: String)
    /// Capture on the interface goes on, after `seconds` without it.
    case resumed(interface: String, seconds: Double, reopened: Bool)
}

/// Captures from one or more interfaces at once with libpcap, and keeps capturing through what a
/// long-lived sensor meets.
///
/// Handles are non-blocking and waited on with `poll` on their selectable descriptors: libpcap's
/// blocking reads ignore the timeout on an idle interface, and then idle flows would never time
/// out and a stop request would wait for the next packet.
///
/// An interface that goes down and up keeps its handle: the kernel keeps the packet socket bound and
/// delivers again once the interface is up (libpcap 1.10 reports nothing in non-blocking mode), so
/// its state is watched (`stateCheckInterval`) to report the blind period. A read error, or an
/// interface that disappeared or was re-created under the same name (new index), closes the handle;
/// it is reopened by name with a growing delay (`reopenDelay` … `maxReopenDelay`). Frame numbers and
/// kernel counters continue across reopens.
public final class LiveCapture {
    public struct Interface {
        public let name: String
        public let index: Int
        public fileprivate(set) var linkType: Int32
        public fileprivate(set) var frames = 0
        /// Times capture on it stopped.
        public fileprivate(set) var interruptions = 0
        /// Captured now (not down, not being reopened).
        public var isCapturing: Bool { handle != nil && interruptedSince == nil }

        fileprivate var handle: OpaquePointer?
        fileprivate var fd: Int32 = -1
        fileprivate var systemIndex: UInt32 = 0
        fileprivate var interruptedSince: Double?
        fileprivate var nextAttempt = 0.0
        fileprivate var delay = 0.0
        fileprivate var attempts = 0
        fileprivate var reportedReopenFailure = false
        /// `any` is no interface of its own: nothing to watch.
        fileprivate var watched: Bool { name != "any" }
    }

    public private(set) var interfaces: [Interface] = []
    private let options: LiveOptions
    private var events: [CaptureEvent] = []
    /// Counters of handles already closed, so that totals never go back.
    private var retired = LiveStatistics()
    private var nextStateCheck = 0.0

    /// Opens and activates every interface; throws `CaptureError` with libpcap's reason. An interface
    /// that exists but is down is not an error: it is captured once it comes up (reported as an
    /// interruption from the start).
    public init(interfaces names: [String], options: LiveOptions) throws {
        self.options = options
        let now = Self.monotonic()
        for (i, name) in names.enumerated() {
            var iface = Interface(name: name, index: i, linkType: 0)
            switch Self.open(name, options: options) {
            case .success(let h):
                iface.install(h)
            case .failure(let e) where e.code == PCAP_ERROR_IFACE_NOT_UP:
                iface.interruptedSince = now
                iface.interruptions = 1
                iface.delay = options.reopenDelay
                iface.nextAttempt = now + iface.delay
                events.append(.interrupted(interface: name, reason: "the interface is down; capture starts when it comes up", reopening: true))
            case .failure(let e):
                close()
                throw CaptureError(e.message)
            }
            interfaces.append(iface)
        }
        nextStateCheck = now + options.stateCheckInterval
    }

    deinit { close() }

    public func close() {
        for k in interfaces.indices { closeHandle(k) }
    }

    /// What happened to the interfaces since the last call (interruptions, reopens).
    public func takeEvents() -> [CaptureEvent] {
        defer { events.removeAll() }
        return events
    }

    /// The BPF expression used when the user gives none: TCP on the s2s ports (also behind IPv6
    /// extension headers) and IP fragments (which carry no ports after the first one), untagged,
    /// behind one VLAN tag, or two (QinQ).
    ///
    /// libpcap's `vlan` moves the offsets of everything after it in the expression, so the
    /// untagged alternatives come first: with `vlan and …` in front of them (as here until issue
    /// #16's live test showed it), untagged fragments were read 4 bytes off and never captured.
    /// On links without VLAN tags (`any`, tun, loopback) libpcap refuses `vlan` altogether: there
    /// the expression is used without its VLAN part (`filter(_:forLinkType:)`).
    public static func defaultFilter(ports: [UInt16]) -> String {
        let p = ports.sorted().map { "tcp port \($0)" }.joined(separator: " or ")
        return withVLANs("(\(p)) or (ip[6:2] & 0x3fff != 0) or (ip6 and ip6[6] == 44)")
    }

    /// IPv6 behind extension headers, on any port: BPF cannot follow the chain to the TCP header
    /// (`ip6 protochain` loops backwards, which the kernel refuses — libpcap then filters every
    /// packet in user space — and libpcap rejects it after `vlan`). Such packets are rare.
    private static let chained = " or (ip6 and (ip6[6] == 0 or ip6[6] == 43 or ip6[6] == 51 or ip6[6] == 60))"
    private static let vlanPart = " or (vlan and ("

    private static func withVLANs(_ ip: String) -> String {
        "\(ip)\(chained)\(vlanPart)\(ip) or (vlan and (\(ip)))))"
    }

    /// The filter to compile on an interface of `linkType`: a default filter loses its VLAN part
    /// where libpcap has no VLAN support (anything but Ethernet); every other filter is the user's.
    static func filter(_ f: String, forLinkType linkType: Int32) -> String {
        guard linkType != 1, let r = f.firstRange(of: chained + vlanPart) else { return f }
        let ip = String(f[..<r.lowerBound])
        return withVLANs(ip) == f ? ip + chained : f
    }

    /// Waits up to `timeoutMilliseconds` for packets and delivers what is ready, at most
    /// `batch` frames per interface (so that signals, timers and stats get their turn under a
    /// constant flood). Returns the number of frames delivered. Reopens interfaces whose time has
    /// come and watches their state on the way.
    public func poll(timeoutMilliseconds: Int32, batch: Int = 20_000, _ body: (CapturedPacket) -> Void) -> Int {
        var now = Self.monotonic()
        reopenDue(now)
        if now >= nextStateCheck { checkStates(now) }
        var open: [Int] = []
        var fds: [pollfd] = []
        var wait = Double(timeoutMilliseconds) / 1000
        for k in interfaces.indices {
            if interfaces[k].handle != nil {
                open.append(k)
                fds.append(pollfd(fd: interfaces[k].fd, events: Int16(POLLIN), revents: 0))
            } else {
                wait = min(wait, max(0, interfaces[k].nextAttempt - now))
            }
        }
        wait = min(wait, max(0, nextStateCheck - now))
        let ready = Glibc.poll(&fds, nfds_t(fds.count), Int32((wait * 1000).rounded(.up)))
        guard ready > 0 else { return 0 }
        var delivered = 0
        var troubled = false
        for (j, f) in fds.enumerated() where f.revents != 0 {
            let k = open[j]
            if f.revents & Int16(POLLERR | POLLHUP | POLLNVAL) != 0 { troubled = true }
            var n = 0
            while n < batch, let h = interfaces[k].handle {
                var header: UnsafeMutablePointer<pcap_pkthdr>? = nil
                var data: UnsafePointer<UInt8>? = nil
                let rc = pcap_next_ex(h, &header, &data)
                if rc < 0 {
                    now = Self.monotonic()
                    fail(k, reason: "a read failed (\(String(cString: pcap_geterr(h))))", now: now)
                    break
                }
                guard rc == 1, let hdr = header, let d = data else { break }
                n += 1
                interfaces[k].frames += 1
                delivered += 1
                let ts = Timestamp(seconds: Int64(hdr.pointee.ts.tv_sec), subsecondNanoseconds: Int64(hdr.pointee.ts.tv_usec))
                body(CapturedPacket(frame: FrameRef(input: k, number: interfaces[k].frames, time: ts),
                                    linkType: interfaces[k].linkType,
                                    bytes: UnsafeRawBufferPointer(start: d, count: Int(hdr.pointee.caplen)),
                                    wireLength: Int(hdr.pointee.len)))
            }
        }
        // POLLERR: the kernel reported a state change (down, gone); look now rather than at the next check.
        if troubled { checkStates(Self.monotonic()) }
        return delivered
    }

    /// Summed kernel statistics of every interface, including handles closed since the start.
    public func statistics() -> LiveStatistics {
        var total = retired
        for i in interfaces { if let h = i.handle { total.add(Self.stats(h)) } }
        return total
    }

    // MARK: - Keeping the capture alive

    private struct OpenFailure: Error {
        var code: Int32
        var message: String
    }

    fileprivate struct OpenHandle {
        var handle: OpaquePointer
        var linkType: Int32
        var systemIndex: UInt32
    }

    private static func open(_ name: String, options: LiveOptions) -> Result<OpenHandle, OpenFailure> {
        var errbuf = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE) + 1)
        guard let h = pcap_create(name, &errbuf) else {
            return .failure(OpenFailure(code: PCAP_ERROR, message: "\(name): \(errbuf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })"))
        }
        pcap_set_snaplen(h, options.snapLength)
        pcap_set_promisc(h, options.promiscuous ? 1 : 0)
        pcap_set_timeout(h, 100)
        pcap_set_buffer_size(h, options.bufferSize)
        if options.immediate { pcap_set_immediate_mode(h, 1) }
        _ = pcap_set_tstamp_precision(h, Int32(PCAP_TSTAMP_PRECISION_NANO))
        let rc = pcap_activate(h)
        if rc < 0 {
            let why = String(cString: pcap_geterr(h))
            pcap_close(h)
            return .failure(OpenFailure(code: rc, message: "\(name): cannot capture (\(why.isEmpty ? String(cString: pcap_statustostr(rc)) : why))"))
        }
        if let given = options.filter, !given.isEmpty {
            let f = LiveCapture.filter(given, forLinkType: pcap_datalink(h))
            var prog = bpf_program()
            if pcap_compile(h, &prog, f, 1, PCAP_NETMASK_UNKNOWN) != 0 || pcap_setfilter(h, &prog) != 0 {
                let why = String(cString: pcap_geterr(h))
                pcap_freecode(&prog)
                pcap_close(h)
                return .failure(OpenFailure(code: PCAP_ERROR, message: "invalid --filter expression '\(f)' on \(name): \(why)"))
            }
            pcap_freecode(&prog)
        }
        var eb = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE) + 1)
        _ = pcap_setnonblock(h, 1, &eb)
        var index: UInt32 = 0, up: Int32 = 0, running: Int32 = 0
        if name != "any" { _ = s2_interface_state(name, &index, &up, &running) }
        return .success(OpenHandle(handle: h, linkType: pcap_datalink(h), systemIndex: index))
    }

    private func closeHandle(_ k: Int) {
        guard let h = interfaces[k].handle else { return }
        retired.add(Self.stats(h))
        pcap_close(h)
        interfaces[k].handle = nil
        interfaces[k].fd = -1
    }

    /// Capture on `k` stopped: note it once per interruption.
    private func interrupt(_ k: Int, reason: String, now: Double, reopening: Bool) {
        guard interfaces[k].interruptedSince == nil else { return }
        interfaces[k].interruptedSince = now
        interfaces[k].interruptions += 1
        interfaces[k].reportedReopenFailure = false
        events.append(.interrupted(interface: interfaces[k].name, reason: reason, reopening: reopening))
    }

    private func resume(_ k: Int, now: Double, reopened: Bool) {
        guard let since = interfaces[k].interruptedSince else { return }
        interfaces[k].interruptedSince = nil
        events.append(.resumed(interface: interfaces[k].name, seconds: max(0, now - since), reopened: reopened))
    }

    /// The handle of `k` is unusable: close it and reopen by name, soon.
    private func fail(_ k: Int, reason: String, now: Double) {
        closeHandle(k)
        interrupt(k, reason: reason, now: now, reopening: true)
        interfaces[k].delay = options.reopenDelay
        interfaces[k].attempts = 0
        interfaces[k].nextAttempt = now + options.reopenDelay
    }

    private func reopenDue(_ now: Double) {
        for k in interfaces.indices where interfaces[k].handle == nil && interfaces[k].nextAttempt <= now {
            interfaces[k].attempts += 1
            switch Self.open(interfaces[k].name, options: options) {
            case .success(let h):
                interfaces[k].install(h)
                resume(k, now: now, reopened: true)
            case .failure(let e):
                // Away (not up, no such device) is what a reopen waits out; anything else is worth a word.
                if e.code != PCAP_ERROR_IFACE_NOT_UP && e.code != PCAP_ERROR_NO_SUCH_DEVICE && !interfaces[k].reportedReopenFailure {
                    interfaces[k].reportedReopenFailure = true
                    events.append(.reopenFailed(interface: interfaces[k].name, reason: e.message))
                }
                interfaces[k].delay = min(max(interfaces[k].delay * 2, options.reopenDelay), options.maxReopenDelay)
                interfaces[k].nextAttempt = now + interfaces[k].delay
            }
        }
    }

    /// Looks at every open interface: gone or replaced → reopen; down or without carrier → blind
    /// (reported); up again → resumed.
    private func checkStates(_ now: Double) {
        nextStateCheck = now + options.stateCheckInterval
        for k in interfaces.indices where interfaces[k].handle != nil && interfaces[k].watched {
            var index: UInt32 = 0, up: Int32 = 0, running: Int32 = 0
            if s2_interface_state(interfaces[k].name, &index, &up, &running) != 0 {
                fail(k, reason: "the interface disappeared", now: now)
            } else if index != interfaces[k].systemIndex {
                fail(k, reason: "the interface was replaced (new index \(index))", now: now)
            } else if up == 0 {
                interrupt(k, reason: "the interface went down", now: now, reopening: false)
            } else if running == 0 {
                interrupt(k, reason: "the interface lost its carrier (link down)", now: now, reopening: false)
            } else if interfaces[k].interruptedSince != nil {
                resume(k, now: now, reopened: false)
            }
        }
    }

    private static func stats(_ h: OpaquePointer) -> LiveStatistics {
        var s = pcap_stat()
        guard pcap_stats(h, &s) == 0 else { return LiveStatistics() }
        return LiveStatistics(received: UInt64(s.ps_recv), dropped: UInt64(s.ps_drop), interfaceDropped: UInt64(s.ps_ifdrop))
    }

    static func monotonic() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}

extension LiveCapture.Interface {
    fileprivate mutating func install(_ h: LiveCapture.OpenHandle) {
        handle = h.handle
        fd = pcap_get_selectable_fd(h.handle)
        linkType = h.linkType
        systemIndex = h.systemIndex
        delay = 0
        attempts = 0
    }
}

extension LiveStatistics {
    mutating func add(_ o: LiveStatistics) {
        received += o.received
        dropped += o.dropped
        interfaceDropped += o.interfaceDropped
    }
}
