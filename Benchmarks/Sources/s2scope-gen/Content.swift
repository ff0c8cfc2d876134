/// Byte-level XML building blocks: a text corpus with UTF-8 and XML entities, base64 and random
/// blocks, and stanza templates. Everything appends to `[UInt8]` (no String work per stanza).

extension Array where Element == UInt8 {
    @inline(__always)
    mutating func put(_ s: StaticString) {
        append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }
    @inline(__always)
    mutating func put(_ b: [UInt8]) { append(contentsOf: b) }
    mutating func putInt(_ v: Int) {
        if v >= 10 { putInt(v / 10) }
        append(UInt8(48 + v % 10))
    }
    mutating func putHex(_ v: UInt64, digits: Int) {
        var i = digits - 1
        while i >= 0 {
            let d = UInt8((v >> UInt64(4 * i)) & 0xf)
            append(d < 10 ? 48 + d : 87 + d)
            i -= 1
        }
    }
}

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// Precomputed material that stanzas are cut from (fast: one memcpy per text node).
final class Corpus {
    let text: [UInt8]
    /// Offsets where a word starts (each preceded by a space, except the first).
    let wordStarts: [Int]
    let base64: [UInt8]
    let random: [UInt8]

    static let asciiWords = [
        "the", "server", "federation", "message", "hello", "world", "meeting", "tomorrow", "coffee", "release",
        "build", "deploy", "works", "fine", "thanks", "see", "you", "at", "noon", "please", "check", "logs",
        "latency", "packet", "stream", "review", "patch", "and", "or", "not", "yes", "maybe", "today", "weekend",
        "train", "late", "again", "call", "me", "when", "ready", "link", "https://example.org/a?b=1", "photo",
        "lunch", "plan", "sounds", "good", "ok", "sure", "later", "done", "ticket", "#4711", "v2.3.1", "9:30",
        "update", "the", "the", "a", "a", "is", "it", "to", "of", "in", "for", "on", "with", "this", "that",
    ]
    static let utf8Words = [
        "Grüße", "naïve", "café", "Ελληνικά", "日本語", "привет", "😀", "🎉", "façade", "smörgåsbord", "中文",
        "עברית", "مرحبا", "Zürich", "São", "ñandú", "Łódź", "€5", "½", "→", "“quoted”", "👍🏽", "Ünïcödé", "한국어",
    ]
    static let entities = [
        "&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&#233;", "&#x263A;", "&#x1F600;", "&lt;b&gt;bold&lt;/b&gt;",
        "AT&amp;T", "x &lt; y", "&#169;", "R&amp;D", "&quot;hi&quot;", "a&gt;b",
    ]

    init(rng: inout Rng, textBytes: Int = 1 << 20) {
        let ascii = Corpus.asciiWords.map(bytes), utf = Corpus.utf8Words.map(bytes), ent = Corpus.entities.map(bytes)
        var t: [UInt8] = []
        t.reserveCapacity(textBytes + 64)
        var starts: [Int] = []
        while t.count < textBytes {
            starts.append(t.count)
            let r = rng.below(100)
            if r < 80 { t += ascii[rng.below(ascii.count)] } else if r < 92 { t += utf[rng.below(utf.count)] } else { t += ent[rng.below(ent.count)] }
            let p = rng.below(40)
            if p == 0 { t.append(UInt8(ascii: ".")) } else if p == 1 { t.append(UInt8(ascii: ",")) } else if p == 2 { t.append(UInt8(ascii: "!")) }
            else if p == 3 { t.append(UInt8(ascii: "?")) } else if p == 4 { t.append(UInt8(ascii: "\n")) }
            t.append(UInt8(ascii: " "))
        }
        starts.append(t.count)
        text = t
        wordStarts = starts
        let alphabet = bytes("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
        var b: [UInt8] = []
        b.reserveCapacity(1 << 16)
        while b.count < 1 << 16 {
            var v = rng.next()
            for _ in 0..<10 { b.append(alphabet[Int(v & 63)]); v >>= 6 }
        }
        base64 = b
        var r: [UInt8] = []
        r.reserveCapacity(1 << 16)
        while r.count < 1 << 16 {
            var v = rng.next()
            for _ in 0..<8 { r.append(UInt8(v & 0xff)); v >>= 8 }
        }
        random = r
    }

    /// About `length` bytes of text (whole words, so never a cut UTF-8 sequence or entity).
    func appendText(_ out: inout [UInt8], length: Int, rng: inout Rng) {
        let n = wordStarts.count
        // Choose a first word such that enough text follows.
        let maxStartOffset = text.count - length - 64
        var i = rng.below(n - 1)
        if wordStarts[i] > maxStartOffset {
            i = upperBound(maxStartOffset) - 1
            if i < 0 { i = 0 }
        }
        let start = wordStarts[i]
        var j = upperBound(start + length)
        if j <= i { j = i + 1 }
        if j >= n { j = n - 1 }
        var end = wordStarts[j] - 1   // drop the trailing space
        if end <= start { end = start + 1 }
        text.withUnsafeBufferPointer { b in
            out.append(contentsOf: UnsafeBufferPointer(rebasing: b[start..<end]))
        }
    }

    /// First index whose word start is > value.
    private func upperBound(_ value: Int) -> Int {
        var lo = 0, hi = wordStarts.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if wordStarts[mid] <= value { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    func appendBase64(_ out: inout [UInt8], length: Int, rng: inout Rng) {
        let len = min(length & ~3, base64.count - 4)
        let start = rng.below(base64.count - len)
        base64.withUnsafeBufferPointer { b in out.append(contentsOf: UnsafeBufferPointer(rebasing: b[start..<(start + len)])) }
    }

    func appendRandom(_ out: inout [UInt8], length: Int, rng: inout Rng) {
        let len = min(length, random.count)
        let start = rng.below(random.count - len + 1)
        random.withUnsafeBufferPointer { b in out.append(contentsOf: UnsafeBufferPointer(rebasing: b[start..<(start + len)])) }
    }
}

/// One XMPP server domain with its addresses and its software's habits.
final class Domain {
    let index: Int
    let name: [UInt8]
    let nameString: String
    let v4: Host
    let v6: Host?
    /// Prosody-like: XML declaration and xml:lang, UUID stream ids; else ejabberd-like numeric ids.
    let prosodyLike: Bool
    let users: [[UInt8]]
    let resources: [[UInt8]]
    var nextPort: UInt16

    init(index: Int, name: String, v4: String, v6: String?, prosodyLike: Bool, rng: inout Rng) {
        self.index = index
        nameString = name
        self.name = bytes(name)
        self.v4 = Host(v4)
        self.v6 = v6.map(Host.init)
        self.prosodyLike = prosodyLike
        let locals = ["alice", "bob", "carol", "dave", "eve", "frank", "grace", "heidi", "ivan", "judy", "mallory",
                      "oscar", "peggy", "trent", "victor", "walter", "jürgen", "maría", "李雷", "søren", "zoë", "ops",
                      "admin", "support", "bot", "news", "room-bot", "kim", "lee", "noah"]
        users = (0..<12).map { _ in bytes(locals[rng.below(locals.count)] + (rng.chance(0.5) ? String(rng.below(100)) : "")) }
        let clients = ["Gajim", "Conversations", "Dino", "Psi", "Monal", "Siskin", "profanity", "Movim", "phone", "laptop"]
        resources = (0..<6).map { _ in
            var r = clients[rng.below(clients.count)] + "."
            let al = Array("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz0123456789")
            for _ in 0..<6 { r.append(al[rng.below(al.count)]) }
            return bytes(r)
        }
        nextPort = UInt16(32768 + rng.below(20000))
    }

    func takePort() -> UInt16 {
        let p = nextPort
        nextPort = nextPort >= 60999 ? 32768 : nextPort + 1
        return p
    }

    static func makeAll(count: Int, rng: inout Rng) -> [Domain] {
        let words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo",
                     "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango", "uniform",
                     "victor", "whiskey", "xray", "yankee", "zulu", "jabber", "chat", "talk", "im", "muc", "social",
                     "home", "lab", "office", "campus", "city", "coop", "union", "guild"]
        let tlds = ["example", "example.org", "example.net", "example.com", "test", "example.de", "example.fr", "example.jp"]
        let prefixes = ["", "", "", "xmpp.", "jabber.", "chat.", "im."]
        var names: [String] = []
        var seen = Set<String>()
        while names.count < count {
            let n = prefixes[rng.below(prefixes.count)] + words[rng.below(words.count)]
                + (rng.chance(0.5) ? "-\(rng.below(100))" : "") + "." + tlds[rng.below(tlds.count)]
            if seen.insert(n).inserted { names.append(n) }
        }
        return names.enumerated().map { i, n in
            let v4 = "10.\(1 + i / 250).\(i % 250 + 1).\(5 + rng.below(200))"
            let r = rng.below(10)
            let v6: String? = r < 4 ? "2001:db8:\(String(i + 1, radix: 16))::\(String(5 + rng.below(200), radix: 16))" : nil
            return Domain(index: i, name: n, v4: v4, v6: v6, prosodyLike: rng.chance(0.5), rng: &rng)
        }
    }
}

/// Templates for stream headers, dialback elements and stanzas.
enum XMPP {
    static func initialHeader(_ out: inout [UInt8], from: Domain, to: Domain) {
        if from.prosodyLike { out.put("<?xml version='1.0'?>") }
        out.put("<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' version='1.0' to='")
        out.put(to.name); out.put("' from='"); out.put(from.name)
        out.put(from.prosodyLike ? "' xml:lang='en'>" : "'>")
    }

    /// The acceptor's header (with `id` unless `id` is nil) and its features.
    static func responseHeader(_ out: inout [UInt8], from: Domain, to: Domain, id: [UInt8]?) {
        if from.prosodyLike { out.put("<?xml version='1.0'?>") }
        out.put("<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' version='1.0' from='")
        out.put(from.name); out.put("' to='"); out.put(to.name)
        if let id { out.put("' id='"); out.put(id) }
        out.put(from.prosodyLike ? "' xml:lang='en'>" : "'>")
    }

    static func features(_ out: inout [UInt8]) {
        out.put("<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback></stream:features>")
    }

    static func streamID(_ d: Domain, rng: inout Rng) -> [UInt8] {
        var out: [UInt8] = []
        if d.prosodyLike {
            out.putHex(rng.next(), digits: 8); out.put("-"); out.putHex(rng.next(), digits: 4); out.put("-4")
            out.putHex(rng.next(), digits: 3); out.put("-"); out.putHex(0x8 | (rng.next() & 3), digits: 1)
            out.putHex(rng.next(), digits: 3); out.put("-"); out.putHex(rng.next(), digits: 12)
        } else {
            out.putInt(Int(rng.next() >> 4))
        }
        return out
    }

    static func key(rng: inout Rng) -> [UInt8] {
        var out: [UInt8] = []
        for _ in 0..<4 { out.putHex(rng.next(), digits: 16) }
        return out
    }

    static func jid(_ out: inout [UInt8], _ d: Domain, user: Int, resource: Int?) {
        out.put(d.users[user % d.users.count]); out.put("@"); out.put(d.name)
        if let r = resource { out.put("/"); out.put(d.resources[r % d.resources.count]) }
    }

    static func id(_ out: inout [UInt8], rng: inout Rng) {
        out.putHex(rng.next(), digits: 12)
    }
}

/// Stanza sizes: mostly small, a long tail to 8 KB.
func textLength(rng: inout Rng) -> Int {
    let r = rng.below(100)
    if r < 55 { return rng.range(8, 160) }
    if r < 85 { return rng.range(160, 900) }
    if r < 96 { return rng.range(900, 3000) }
    return rng.range(3000, 7600)
}
