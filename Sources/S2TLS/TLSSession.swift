import S2Model

/// One TLS alert as seen on the wire (in the clear, or decrypted).
public struct TLSAlert: Sendable, Hashable {
    public var direction: Direction
    public var level: UInt8
    public var description: UInt8
    /// Whether the alert travelled inside protected records.
    public var encrypted: Bool
    public var frame: FrameRef

    public var name: String { TLSAlert.names[description] ?? "alert \(description)" }
    public var levelName: String { level == 2 ? "fatal" : level == 1 ? "warning" : "level \(level)" }

    static let names: [UInt8: String] = [
        0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac", 22: "record_overflow",
        40: "handshake_failure", 42: "bad_certificate", 43: "unsupported_certificate", 44: "certificate_revoked",
        45: "certificate_expired", 46: "certificate_unknown", 47: "illegal_parameter", 48: "unknown_ca",
        49: "access_denied", 50: "decode_error", 51: "decrypt_error", 70: "protocol_version",
        71: "insufficient_security", 80: "internal_error", 86: "inappropriate_fallback", 90: "user_canceled",
        109: "missing_extension", 110: "unsupported_extension", 112: "unrecognized_name",
        113: "bad_certificate_status_response", 115: "unknown_psk_identity", 116: "certificate_required",
        120: "no_application_protocol",
    ]
}

/// What could be done with the protected part of a TLS session.
public enum TLSDecryption: String, Sendable {
    /// No `--keylog` was given.
    case noKeyLog = "no-keylog"
    /// The key log has no secrets for this session's client random.
    case noSecrets = "no-secrets"
    /// Every protected record seen was decrypted.
    case decrypted
    /// A record failed authentication with the key log's secrets (wrong keys); that direction stopped.
    case failed
    /// The negotiated suite is not one S2Scope decrypts (only AEAD: AES-GCM, ChaCha20-Poly1305).
    case unsupportedSuite = "unsupported-suite"
    /// The handshake was not seen whole (midstream pickup, gap, not TLS), so no keys could be applied.
    case incomplete
}

/// TLS parameters of one connection, from the handshake and the record layer.
public struct TLSInfo: Sendable {
    /// Negotiated protocol version ("TLS 1.3", "TLS 1.2"…), from ServerHello (supported_versions first).
    public var version: String?
    /// Versions the client offered (supported_versions, else ClientHello.legacy_version).
    public var clientVersions: [String] = []
    public var cipherSuite: String?
    public var cipherSuiteID: UInt16?
    public var offeredCipherSuites = 0
    /// server_name from the ClientHello.
    public var sni: String?
    public var alpnOffered: [String] = []
    /// The protocol selected (ServerHello in TLS 1.2, EncryptedExtensions in TLS 1.3).
    public var alpn: String?
    public var helloRetryRequest = false
    /// Certificates sent by the initiator (TLS client) and by the acceptor (TLS server); nil when
    /// not seen (TLS 1.3 certificates are encrypted: seen only when decrypted).
    public var clientCertificates: Int?
    public var serverCertificates: Int?
    /// The chains themselves, parsed (same visibility as the counts).
    public var clientCertificateChain: TLSCertificateChain?
    public var serverCertificateChain: TLSCertificateChain?
    public var alerts: [TLSAlert] = []
    /// TLS records seen, per direction (client→server, server→client).
    public var records = [0, 0]
    /// Application-data plaintext bytes decrypted and handed to the XMPP layer.
    public var decryptedBytes: UInt64 = 0
    /// Bytes of protected records (headers included) that were not decrypted.
    public var undecryptedBytes: UInt64 = 0
    public var decryption: TLSDecryption = .noKeyLog
    /// Why decryption stopped, when it did.
    public var decryptionNote: String?

    public init() {}
}

/// Parses the TLS record layer of both directions of one connection after `<proceed/>`
/// (records split across TCP segments, handshake messages across records), reports its
/// parameters and, with secrets from an NSS key log, decrypts TLS 1.3 and TLS 1.2 AEAD
/// records. Application-data plaintext goes to `onPlaintext` with the frame that completed
/// the record that carried it.
public final class TLSSession {
    public let connection: ConnectionID
    /// The run's secrets; nil: no key log was given (records are parsed, not decrypted).
    public let keys: TLSKeyStore?
    public private(set) var info = TLSInfo()
    /// Decrypted application data of a direction.
    public var onPlaintext: ((Direction, UnsafeRawBufferPointer, FrameRef) -> Void)?
    public var onAnomaly: ((Anomaly) -> Void)?
    /// True once an anomaly about this session's decryption was reported.
    public private(set) var reportedProblem = false
    /// Capture time since which the session waits for secrets that are not in the key log yet
    /// (a following key store only); nil when it does not wait.
    public private(set) var waitingSince: Timestamp?
    /// Called when the session stops waiting for its secrets (they arrived, or it gave up);
    /// a connection that ended while its session waited is closed then.
    public var onWaitEnded: (() -> Void)?

    /// A protected record held while the session waits for its secrets.
    struct HeldRecord {
        var direction: Direction
        var type: UInt8
        var version: UInt16
        var fragment: [UInt8]
        var frame: FrameRef
    }
    private var held: [HeldRecord] = []
    private var heldBytes = 0
    /// TLS 1.2 with a following key store: the master secret was not in the key log at the
    /// ServerHello (the endpoints derive it later); keys are looked up again at the first
    /// change_cipher_spec.
    private var deferredTLS12 = false
    /// The frame being parsed (the time a wait starts).
    private var currentFrame = FrameRef(input: 0, number: 0, time: .zero)

    struct DirectionState {
        var buffer: [UInt8] = []
        /// Stream offset of `buffer[0]`.
        var bufferOffset: UInt64 = 0
        /// The record stream is lost (gap, not TLS): bytes are only counted.
        var lost = false
        var failed = false
        var handshake: [UInt8] = []
        /// Records of this direction are protected from now on.
        var protected = false
        var protection: RecordProtection?
        /// Why `protection` is nil while `protected` (for the report).
        var missingSecret: String?
        var switchToApplication = false
        var keyUpdate = false
        var protectedRecords = 0
    }

    private var dirs = [DirectionState(), DirectionState()]
    private var clientRandom: [UInt8]?
    private var serverRandom: [UInt8]?
    private var suite: CipherSuite?
    private var negotiated: UInt16?
    private var pendingTLS12: [RecordProtection?] = [nil, nil]
    private var anyDecrypted = false

    public init(connection: ConnectionID, keys: TLSKeyStore?) {
        self.connection = connection
        self.keys = keys
        info.decryption = keys == nil ? .noKeyLog : .incomplete
    }

    /// A session reading a fixed key log (nil: none given).
    public convenience init(connection: ConnectionID, keyLog: KeyLog?) {
        self.init(connection: connection, keys: keyLog.map { TLSKeyStore(keyLog: $0) })
    }

    private var keyLog: KeyLog? { keys?.keyLog }
    private var isTLS13: Bool { negotiated == 0x0304 }
    public var isWaitingForSecrets: Bool { waitingSince != nil }

    // MARK: - Input

    /// Bytes of direction `d` after the switch to TLS, at stream offset `offset`.
    public func tlsBytes(_ d: Direction, _ bytes: UnsafeRawBufferPointer, at offset: UInt64, frame: FrameRef) {
        let i = d.rawValue
        currentFrame = frame
        if dirs[i].lost {
            info.undecryptedBytes += UInt64(bytes.count)
            return
        }
        if dirs[i].buffer.isEmpty { dirs[i].bufferOffset = offset }
        dirs[i].buffer.append(contentsOf: bytes)
        var pos = 0
        // A copy of the buffer's reference: `record` may replace `dirs[i].buffer` while it is read.
        let buf = dirs[i].buffer
        let stopped: Bool = buf.withWireBytes { all in
            while let type = all.u8(pos), let version = all.be16(pos + 1), let length16 = all.be16(pos + 3) {
                let length = Int(length16)
                guard (20...24).contains(type), version >> 8 == 3, length <= 16_384 + 2_048 else {
                    lose(d, at: dirs[i].bufferOffset + UInt64(pos), frame: frame,
                         why: "the bytes at stream offset \(dirs[i].bufferOffset + UInt64(pos)) are not a TLS record header")
                    info.undecryptedBytes += UInt64(all.count - pos)
                    return true
                }
                guard let fragment = all.slice(at: pos + 5, length: length) else { break }
                record(d, type: type, version: version, fragment: fragment, frame: frame)
                pos += 5 + length
                if dirs[i].lost { return true }
            }
            return false
        }
        if stopped {
            dirs[i].buffer = []
            return
        }
        if pos > 0 {
            dirs[i].buffer.removeFirst(pos)
            dirs[i].bufferOffset += UInt64(pos)
        }
    }

    /// Bytes of direction `d` will never arrive: the record stream cannot be followed further.
    public func tlsGap(_ d: Direction, at offset: UInt64, length: UInt64, frame: FrameRef) {
        let i = d.rawValue
        info.undecryptedBytes += UInt64(dirs[i].buffer.count)
        dirs[i].buffer = []
        if !dirs[i].lost {
            dirs[i].lost = true
            if info.decryption == .decrypted || (keys != nil && info.decryption != .failed) {
                info.decryption = .incomplete
                info.decryptionNote = "a gap of \(length) bytes in the \(d.reportName) TLS records; the rest of that direction was not decrypted"
            }
        }
    }

    /// The connection ended: a record cut short is counted as not decrypted; the final
    /// decryption status is settled.
    public func tlsFinish() {
        if waitingSince != nil { giveUpWaiting(why: "the connection ended before they arrived") }
        for i in 0..<2 {
            info.undecryptedBytes += UInt64(dirs[i].buffer.count)
            dirs[i].buffer = []
        }
        if keys != nil, info.decryption == .incomplete, anyDecrypted, info.undecryptedBytes == 0, info.decryptionNote == nil {
            info.decryption = .decrypted
        }
    }

    private func lose(_ d: Direction, at offset: UInt64, frame: FrameRef, why: String) {
        dirs[d.rawValue].lost = true
        if keys != nil && info.decryption != .failed && info.decryption != .noSecrets {
            info.decryption = .incomplete
            info.decryptionNote = why
        }
        report(Anomaly(kind: .encrypted, connection: connection, direction: d, frame: frame,
                       message: "TLS record layer lost in the \(d.reportName) direction: \(why); the rest of that direction was not parsed or checked"))
    }

    private func report(_ a: Anomaly) {
        reportedProblem = true
        onAnomaly?(a)
    }

    // MARK: - Records

    private func record(_ d: Direction, type: UInt8, version: UInt16, fragment: WireBytes, frame: FrameRef) {
        if waitingSince != nil {
            hold(d, type: type, version: version, fragment: fragment, frame: frame)
            return
        }
        if deferredTLS12 && type == 20 {
            // TLS 1.2: the master secret exists once the client sent its key exchange, which
            // precedes the first change_cipher_spec; the key log should have it by now.
            deferredTLS12 = false
            installKeys(atChangeCipherSpec: true)
            if waitingSince != nil {
                hold(d, type: type, version: version, fragment: fragment, frame: frame)
                return
            }
        }
        let i = d.rawValue
        info.records[i] += 1
        let size = UInt64(5 + fragment.count)
        // TLS 1.3 keeps change_cipher_spec (compatibility) and early alerts in the clear.
        guard dirs[i].protected, type == 23 || !isTLS13, type != 20 else {
            plain(d, type: type, content: fragment, frame: frame, protected: false)
            return
        }
        dirs[i].protectedRecords += 1
        let n = dirs[i].protectedRecords
        guard !dirs[i].failed, var p = dirs[i].protection else {
            info.undecryptedBytes += size
            if !dirs[i].failed, let missing = dirs[i].missingSecret, keys != nil, info.decryption != .noSecrets,
               info.decryption != .unsupportedSuite {
                dirs[i].missingSecret = nil
                info.decryption = .failed
                info.decryptionNote = missing
                dirs[i].failed = true
                report(Anomaly(kind: .encrypted, connection: connection, direction: d, frame: frame, bytes: size,
                               message: "TLS decryption failed: \(missing); protected record \(n) of the \(d.reportName) direction and everything after it were not decrypted or checked"))
            }
            return
        }
        guard let opened = p.open(type: type, version: version, fragment: ArraySlice(fragment.buffer), tls13: isTLS13) else {
            dirs[i].failed = true
            info.undecryptedBytes += size
            info.decryption = .failed
            let what = "protected record \(n) of the \(d.reportName) direction (frame \(frame.number)) failed authentication with the key log's secrets (\(suite?.name ?? "?"))"
            info.decryptionNote = what
            report(Anomaly(kind: .encrypted, connection: connection, direction: d, frame: frame, bytes: size,
                           message: "TLS decryption failed: \(what); wrong or mismatched keys — nothing more of this direction is decrypted or checked"))
            return
        }
        dirs[i].protection = p
        anyDecrypted = true
        opened.withWireBytes { o in
            if isTLS13 {
                // TLSInnerPlaintext: content || type || zeros.
                guard let last = o.lastOffset(where: { $0 != 0 }), let innerType = o.u8(last) else { return }
                plain(d, type: innerType, content: o.prefix(last), frame: frame, protected: true)
            } else {
                plain(d, type: type, content: o, frame: frame, protected: true)
            }
        }
        if dirs[i].switchToApplication {
            dirs[i].switchToApplication = false
            let label = d == .clientToServer ? "CLIENT_TRAFFIC_SECRET_0" : "SERVER_TRAFFIC_SECRET_0"
            install13(d, label: label)
        } else if dirs[i].keyUpdate {
            dirs[i].keyUpdate = false
            if let s = suite { dirs[i].protection = dirs[i].protection?.updated(suite: s) }
        }
    }

    private func plain(_ d: Direction, type: UInt8, content: WireBytes, frame: FrameRef, protected: Bool) {
        let i = d.rawValue
        switch type {
        case 22:
            dirs[i].handshake.append(contentsOf: content.buffer)
            var pos = 0
            let hs = dirs[i].handshake
            hs.withWireBytes { all in
                while let type = all.u8(pos), let len = all.be24(pos + 1), let body = all.slice(at: pos + 4, length: Int(len)) {
                    handshake(d, type: type, body: body, protected: protected, frame: frame)
                    pos += 4 + Int(len)
                }
            }
            if pos > 0 { dirs[i].handshake.removeFirst(pos) }
        case 20:
            // TLS 1.2: change_cipher_spec — this direction is protected from its next record on.
            if !isTLS13 && negotiated != nil {
                dirs[i].protected = true
                dirs[i].protection = pendingTLS12[i]
                if pendingTLS12[i] == nil && dirs[i].missingSecret == nil && keys != nil && info.decryption == .incomplete {
                    dirs[i].missingSecret = "no key for this TLS 1.2 session"
                }
            }
        case 21:
            var k = 0
            while let level = content.u8(k), let description = content.u8(k + 1) {
                info.alerts.append(TLSAlert(direction: d, level: level, description: description, encrypted: protected, frame: frame))
                k += 2
            }
        case 23:
            if protected {
                info.decryptedBytes += UInt64(content.count)
                if !content.isEmpty { onPlaintext?(d, content.buffer, frame) }
            } else {
                info.undecryptedBytes += UInt64(5 + content.count)
            }
        default:
            break
        }
    }

    // MARK: - Handshake

    private static let helloRetryRandom: [UInt8] = [
        0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
        0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
    ]

    private func handshake(_ d: Direction, type: UInt8, body: WireBytes, protected: Bool, frame: FrameRef) {
        var r = Reader(body)
        switch type {
        case 1 where d == .clientToServer:
            clientHello(&r)
        case 2 where d == .serverToClient:
            serverHello(&r)
        case 8:  // EncryptedExtensions (TLS 1.3)
            if let exts = r.vector(2) { extensions(exts, server: true) }
        case 11:
            if isTLS13 { _ = r.vector(1) }
            guard var list = r.vector(3).map({ Reader($0) }) else { return }
            var n = 0
            var der: [ArraySlice<UInt8>] = []
            while !list.atEnd {
                guard let certificate = list.vector(3) else { break }
                n += 1
                // Copied out of the handshake buffer: the chain outlives this view of it.
                if der.count < TLSCertificateChain.maxParsed { der.append(Array(certificate.buffer)[...]) }
                if isTLS13 { _ = list.vector(2) }
            }
            let chain = TLSCertificateChain(direction: d, frame: frame, der: der, count: n)
            if d == .clientToServer {
                info.clientCertificates = n
                info.clientCertificateChain = chain
            } else {
                info.serverCertificates = n
                info.serverCertificateChain = chain
            }
        case 20:
            if isTLS13 && protected { dirs[d.rawValue].switchToApplication = true }
        case 24:
            if isTLS13 && protected { dirs[d.rawValue].keyUpdate = true }
        default:
            break
        }
    }

    private func clientHello(_ r: inout Reader) {
        guard let legacy = r.u16(), let random = r.bytes(32), r.vector(1) != nil,
              let suites = r.vector(2), r.vector(1) != nil else { return }
        clientRandom = Array(random)
        info.offeredCipherSuites = suites.count / 2
        info.clientVersions = [versionName(legacy)]
        if let exts = r.vector(2) { extensions(exts, server: false) }
    }

    private func serverHello(_ r: inout Reader) {
        guard let legacy = r.u16(), let random = r.bytes(32), r.vector(1) != nil, let cs = r.u16(), r.u8() != nil else { return }
        if Array(random) == TLSSession.helloRetryRandom {
            // HelloRetryRequest: a second ClientHello/ServerHello follows.
            info.helloRetryRequest = true
            return
        }
        serverRandom = Array(random)
        negotiated = legacy
        if let exts = r.vector(2) { extensions(exts, server: true) }
        let s = CipherSuite.lookup(cs)
        suite = s
        info.cipherSuite = s.name
        info.cipherSuiteID = cs
        info.version = negotiated.map(versionName)
        installKeys()
    }

    private func extensions(_ data: WireBytes, server: Bool) {
        var r = Reader(data)
        while !r.atEnd {
            guard let type = r.u16(), let body = r.vector(2) else { return }
            var e = Reader(body)
            switch type {
            case 0 where !server:  // server_name
                guard var list = e.vector(2).map({ Reader($0) }) else { break }
                while !list.atEnd {
                    guard let kind = list.u8(), let name = list.vector(2) else { break }
                    if kind == 0 { info.sni = String(decoding: name.buffer, as: UTF8.self) }
                }
            case 16:  // application_layer_protocol_negotiation
                guard var list = e.vector(2).map({ Reader($0) }) else { break }
                var names: [String] = []
                while !list.atEnd {
                    guard let p = list.vector(1) else { break }
                    names.append(String(decoding: p.buffer, as: UTF8.self))
                }
                if server { info.alpn = names.first } else { info.alpnOffered = names }
            case 43:  // supported_versions
                if server {
                    if let v = e.u16() { negotiated = v }
                } else if var list = e.vector(1).map({ Reader($0) }) {
                    var vs: [String] = []
                    while let v = list.u16() {
                        if v & 0x0f0f != 0x0a0a { vs.append(versionName(v)) }  // skip GREASE
                    }
                    info.clientVersions = vs
                }
            default:
                break
            }
        }
    }

    // MARK: - Keys

    private func installKeys(atChangeCipherSpec: Bool = false) {
        guard let s = suite else { return }
        let tls13 = isTLS13
        if tls13 {
            // Both directions are protected from the ServerHello on (the client from its next
            // non-change_cipher_spec record).
            dirs[0].protected = true
            dirs[1].protected = true
        }
        guard let keys else { return }
        guard s.aead != nil else {
            info.decryption = .unsupportedSuite
            info.decryptionNote = "\(s.name) is not an AEAD suite; S2Scope decrypts AES-GCM and ChaCha20-Poly1305 suites only"
            report(Anomaly(kind: .encrypted, connection: connection,
                           message: "TLS decryption not possible: \(info.decryptionNote!); the encrypted part was not checked"))
            return
        }
        if keys.following, let cr = clientRandom, !keys.hasAllSecrets(clientRandom: cr, tls13: tls13) {
            if !tls13 && !atChangeCipherSpec {
                deferredTLS12 = true
                return
            }
            // The server may not have written them yet: hold the records until they come.
            waitingSince = currentFrame.time
            keys.wait(self, clientRandom: cr)
            return
        }
        // Read after the wait check: a followed key log may just have gained this session.
        let keyLog = keys.keyLog
        guard let cr = clientRandom, keyLog.hasSession(clientRandom: cr) else {
            info.decryption = .noSecrets
            info.decryptionNote = "the key log has no secrets for client random \(clientRandom.map(hexString) ?? "(ClientHello not seen)")"
            report(Anomaly(kind: .encrypted, connection: connection,
                           message: "TLS decryption not possible: \(info.decryptionNote!); the encrypted part was not checked"))
            return
        }
        if tls13 {
            install13(.clientToServer, label: "CLIENT_HANDSHAKE_TRAFFIC_SECRET")
            install13(.serverToClient, label: "SERVER_HANDSHAKE_TRAFFIC_SECRET")
        } else {
            guard let master = keyLog.secret("CLIENT_RANDOM", clientRandom: cr), let sr = serverRandom,
                  let protections = RecordProtection.tls12(suite: s, master: master, clientRandom: cr, serverRandom: sr) else {
                dirs[0].missingSecret = "the key log has no CLIENT_RANDOM (master secret) line for this TLS 1.2 session"
                dirs[1].missingSecret = dirs[0].missingSecret
                return
            }
            pendingTLS12 = [protections.client, protections.server]
        }
    }

    // MARK: - Waiting for secrets

    var secretsAreComplete: Bool {
        guard let keys, let cr = clientRandom else { return false }
        return keys.keyLog.hasAllSecrets(clientRandom: cr, tls13: isTLS13)
    }

    private func hold(_ d: Direction, type: UInt8, version: UInt16, fragment: WireBytes, frame: FrameRef) {
        guard let keys, let since = waitingSince else { return }
        let size = 5 + fragment.count
        if frame.time.secondsSince(since) > keys.limits.seconds {
            giveUpWaiting(why: "no secrets for it arrived in the key log within \(formatSeconds(keys.limits.seconds)) s")
        } else if !keys.reserve(size, sessionBytes: heldBytes) {
            giveUpWaiting(why: "its records reached the limit of bytes held while waiting for them (\(heldBytes) bytes held)")
        } else {
            held.append(HeldRecord(direction: d, type: type, version: version, fragment: Array(fragment.buffer), frame: frame))
            heldBytes += size
            return
        }
        record(d, type: type, version: version, fragment: fragment, frame: frame)
    }

    /// The secrets arrived: the wait ends and the keys are installed. Returns the held records,
    /// which the store hands back through `replay` in capture order (merged with those of
    /// other sessions released at the same time), then calls `finishRelease`.
    func beginRelease() -> [HeldRecord] {
        guard let keys, let cr = clientRandom, waitingSince != nil else { return [] }
        waitingSince = nil
        keys.stopWaiting(self, clientRandom: cr, released: true, heldBytes: heldBytes)
        installKeys()
        let records = held
        held = []
        heldBytes = 0
        return records
    }

    func replay(_ r: HeldRecord) {
        r.fragment.withWireBytes { record(r.direction, type: r.type, version: r.version, fragment: $0, frame: r.frame) }
    }

    func finishRelease() { onWaitEnded?() }

    /// The secrets did not come: the held records are counted as not decrypted.
    func giveUpWaiting(why: String) {
        guard let keys, let cr = clientRandom, waitingSince != nil else { return }
        waitingSince = nil
        keys.stopWaiting(self, clientRandom: cr, released: false, heldBytes: heldBytes)
        info.decryption = .noSecrets
        info.decryptionNote = "the key log has no secrets for client random \(hexString(cr)): \(why)"
        report(Anomaly(kind: .encrypted, connection: connection, frame: held.first?.frame ?? currentFrame, bytes: UInt64(heldBytes),
                       message: "TLS decryption not possible: \(info.decryptionNote!); \(heldBytes) bytes of records held for them and the rest of the session were not decrypted or checked"))
        replayHeld()
        onWaitEnded?()
    }

    private func replayHeld() {
        let records = held
        held = []
        heldBytes = 0
        for r in records { r.fragment.withWireBytes { record(r.direction, type: r.type, version: r.version, fragment: $0, frame: r.frame) } }
    }

    private func install13(_ d: Direction, label: String) {
        let i = d.rawValue
        guard let s = suite, let cr = clientRandom, let secret = keyLog?.secret(label, clientRandom: cr) else {
            dirs[i].protection = nil
            if keyLog?.hasSession(clientRandom: clientRandom ?? []) == true {
                dirs[i].missingSecret = "the key log has no \(label) for this session"
            }
            return
        }
        dirs[i].protection = RecordProtection.tls13(suite: s, secret: secret)
    }
}

func versionName(_ v: UInt16) -> String {
    switch v {
    case 0x0300: return "SSL 3.0"
    case 0x0301: return "TLS 1.0"
    case 0x0302: return "TLS 1.1"
    case 0x0303: return "TLS 1.2"
    case 0x0304: return "TLS 1.3"
    default: return "0x" + String(v, radix: 16).leftPadded(4)
    }
}

/// Handshake fields, read through the checked wire reader.
struct Reader {
    var wire: WireReader
    init(_ d: WireBytes) { wire = WireReader(d) }
    var atEnd: Bool { wire.isAtEnd }
    mutating func u8() -> UInt8? { wire.u8() }
    mutating func u16() -> UInt16? { wire.be16() }
    mutating func bytes(_ n: Int) -> WireBytes? { wire.bytes(n) }
    /// A vector with a `lengthBytes`-byte length prefix.
    mutating func vector(_ lengthBytes: Int) -> WireBytes? { wire.vector(lengthBytes: lengthBytes) }
}
