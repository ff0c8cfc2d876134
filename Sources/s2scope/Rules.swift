import ArgumentParser
import S2Rules

struct Rules: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the rules S2Scope checks, or explain one.",
        discussion: "Rule IDs are those of the project's RULES.md catalog; use them with --disable.")

    @Argument(help: "A rule ID to explain (e.g. DB-CORR-6).")
    var id: String?

    func run() throws {
        if let id {
            guard let d = RuleCatalog.description(of: id.uppercased()) else {
                throw FatalError(message: "unknown rule '\(id)' (run 's2scope rules' for the list)")
            }
            print("\(d.id)  \(d.title)")
            print("  severity:      \(d.severity.name)")
            print("  source:        \(d.source)")
            print("  observability: \(d.observability.rawValue)")
            print("  status:        \(d.notImplemented.map { "not checked: \($0)" } ?? "checked")")
            for (i, ex) in d.firing.enumerated() {
                print("\n  fires on (example \(i + 1)):")
                for l in ex.split(separator: "\n") { print("    \(l)") }
            }
            return
        }
        print("ID              SEVERITY  OBS  STATUS       TITLE")
        for d in RuleCatalog.all {
            let idc = d.id.padding(16), sev = d.severity.name.padding(10), obs = d.observability.rawValue.padding(5)
            print("\(idc)\(sev)\(obs)\((d.isImplemented ? "checked" : "not checked").padding(13))\(d.title)")
        }
        let n = RuleCatalog.all.filter(\.isImplemented).count
        print("\n\(n) of \(RuleCatalog.all.count) rules checked. 's2scope rules ID' explains one.")
    }
}

extension String {
    func padding(_ n: Int) -> String { count >= n ? self + " " : self + String(repeating: " ", count: n - count) }
}
