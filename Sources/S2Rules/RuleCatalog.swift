import S2Model

/// Every rule of RULES.md, implemented or not, in catalog order. `s2scope rules` prints it;
/// a test compares its IDs with RULES.md.
public enum RuleCatalog {
    /// Fresh instances of every implemented rule (rules may keep per-run state).
    public static func makeRules() -> [Rule] {
        [TCP1(), TCP2(), TCP3(),
         XML1(), XML2(), XML3(), XML4(), XML5(),
         StreamHdr1(), StreamHdr2(), StreamHdr3(), StreamHdr4(), StreamHdr5(), StreamHdr6(), StreamHdr7(), StreamHdr8(), StreamHdr9(),
         StreamVer1(), StreamVer2(), StreamFeat1(), StreamFeat2(), TLS1(), TLS2(), TLS3(),
         StreamErr1(), StreamErr2(), StreamErr3(), StreamErr4(), StreamErr5(), StreamErr6(),
         DBNS1(), DBNS2(), DBNS3(), DBSyn1(), DBSyn2(),
         DBRes1(), DBRes2(), DBRes3(), DBRes4(), DBRes5(),
         DBRcv1(), DBRcv2(), DBRcv3(), DBRcv5(), DBRcv6(), DBRcv8(), DBRcv9(), DBRcv10(),
         DBAuth1(), DBAuth2(), DBAuth3(),
         DBCorr1(), DBCorr2(), DBCorr3(), DBCorr4(), DBCorr5(), DBCorr6(), DBCorr7(), DBCorr8(), DBCorr9(),
         DBAdv1(), DBAdv2(), DBKey1(),
         StanzaAddr(attribute: "to"), StanzaAddr(attribute: "from"), StanzaAddr3(), StanzaAddr4(), StanzaAddr5(), StanzaAddr6(),
         StanzaNS1(), StanzaIQ1(), StanzaIQ2(),
         Bidi1(), Bidi2(), Bidi3(),
         SASL1(), SASL2(), SASL3(), SASL4(), SASL5(), SASL6(), SASL7(), SASL8()]
    }

    /// Rules of RULES.md that S2Scope does not check, with the reason.
    public static let notImplemented: [RuleDescription] = [
        RuleDescription(id: "DB-RCV-4", title: "RS keeps an older validated connection of the same sender until the new one is validated",
                        severity: .medium, source: "RFC3920 §8.3 s4", observability: .crossConnection,
                        notImplemented: "needs a reliable connection↔server mapping; closing an old connection has many legitimate causes (idle timeouts), so a passive check would mostly produce false alarms"),
        RuleDescription(id: "DB-RCV-7", title: "Stanzas for a pair not yet validated are never processed",
                        severity: .high, source: "XEP-0220 §2.2.1; RFC3920 §8.3 s10, §4.3", observability: .crossConnection,
                        notImplemented: "needs proof that the RS processed an early stanza (a reply on another connection); the early stanza itself is reported as DB-RES-3"),
        RuleDescription(id: "NO-1", title: "No inter-domain traffic before DNS resolution", severity: .info, source: "RFC3920 §8.1, §14.4",
                        observability: .notObservable, notImplemented: "needs DNS traffic, not on port 5269"),
        RuleDescription(id: "NO-2", title: "Dialback secret handling", severity: .info, source: "XEP-0185 §2",
                        observability: .notObservable, notImplemented: "internal state of the server"),
        RuleDescription(id: "NO-3", title: "Certificate checks in dialback shortcuts", severity: .info, source: "XEP-0344 §2.6; RFC6120 §13.7",
                        observability: .notObservable, notImplemented: "inside TLS"),
        RuleDescription(id: "NO-4", title: "Queued stanzas bounced on failure", severity: .info, source: "XEP-0220 §2.1.1, §2.5",
                        observability: .notObservable, notImplemented: "bounces go to local clients"),
        RuleDescription(id: "NO-5", title: "The OS makes no assumption about how the RS verifies", severity: .info, source: "XEP-0220 §2.1.1",
                        observability: .notObservable, notImplemented: "internal logic; the visible part is DB-CORR-9"),
        RuleDescription(id: "NO-6", title: "bidi + dialback initiators support dialback errors", severity: .info, source: "XEP-0288 §2.2",
                        observability: .notObservable, notImplemented: "a capability, not traffic"),
    ]

    /// Every rule description, implemented ones first in catalog order.
    public static var all: [RuleDescription] {
        makeRules().map(\.description) + notImplemented
    }

    public static func description(of id: String) -> RuleDescription? {
        all.first { $0.id == id }
    }
}
