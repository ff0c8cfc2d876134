import Foundation
import S2Synth

/// A capture whose wire text tries to attack the reports: markup and script in domains, stream
/// ids and dialback keys, and terminal escape sequences (colour, window title, bell).
enum HostileCapture {
    /// Lines of a `Transcript`. XML forbids a literal `<` in attribute values, so the markup there
    /// is entity-encoded (the parser hands the decoded `<script>` to the analyzer); the db:result
    /// key carries it raw in CDATA. XML 1.0 forbids ESC and BEL, so the 7-bit ANSI sequences
    /// (ESC [31m, ESC ]0;title BEL) make the parser resynchronise, while their 8-bit forms
    /// (U+009B CSI, U+009D OSC, U+009C ST) and a bidi override (U+202E) are legal XML and reach
    /// domains, stream ids and messages.
    static let transcript = """
        C> $HDR to='b.example' from='&lt;script&gt;document.title=&quot;pwned&quot;&lt;/script&gt;.example'>
        S> $HDR from='b.example' to='a.example' id='&quot;&gt;&lt;img src=x onerror=alert(1)&gt;'>
        C> <db:result from='&lt;script&gt;alert(1)&lt;/script&gt;' to='b.example'><![CDATA[<script>document.title='pwned'</script>"><img src=x onerror=alert(1)>]]></db:result>
        2C> $HDR to='a.example' from='b.example'>
        2S> $HDR from='a.example' to='b.example' id='x"><img src=x onerror=alert(1)>'>
        2C> <db:verify from='b.example' to='&lt;script&gt;alert(1)&lt;/script&gt;' id='&quot;&gt;&lt;img src=x onerror=alert(1)&gt;'><![CDATA[<script>document.title='pwned'</script>"><img src=x onerror=alert(1)>]]></db:verify>
        2S> <db:verify from='&lt;script&gt;alert(1)&lt;/script&gt;' to='b.example' id='&quot;&gt;&lt;img src=x onerror=alert(1)&gt;' type='valid'/>
        S> <db:result from='b.example' to='&lt;script&gt;alert(1)&lt;/script&gt;' type='valid'/>
        C> <message from='x@evil.example' to='y@b.example'><body>\\x1b[31mred\\x1b]0;pwned-title\\x07 &lt;script&gt;alert(1)&lt;/script&gt;</body></message>
        3C> $HDR to='b.example' from='ansi\\xc2\\x9b31m.example\\xc2\\x9d0;pwned-title\\xc2\\x9c'>
        3S> $HDR from='b.example' to='ansi\\xc2\\x9b31m.example\\xc2\\x9d0;pwned-title\\xc2\\x9c' id='\\xe2\\x80\\xaeevil\\xc2\\x9b2J'>
        3C> <db:result from='ansi\\xc2\\x9b31m.example\\xc2\\x9d0;pwned-title\\xc2\\x9c' to='b.example'>\\x1b]0;pwned-title\\x07key</db:result>
        +1
        close
        2close
        3close
        """

    static var pcap: [UInt8] { get throws { try Transcript(transcript).pcap } }
}
