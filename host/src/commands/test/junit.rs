//! `weir test --junit FILE`: the results as JUnit XML, which CI systems show per test. One
//! `<testsuite>` per test file, one `<testcase>` per `[[test]]`, a `<failure>` holding the
//! differences of one that failed.

use std::fmt::Write;

/// A test's result, for the report.
pub(super) struct Case {
    pub(super) name: String,
    /// The differences; empty when it passed.
    pub(super) failures: Vec<String>,
}

/// One test file's results.
pub(super) struct Suite {
    pub(super) name: String,
    pub(super) cases: Vec<Case>,
}

/// The report as XML text.
pub(super) fn report(suites: &[Suite]) -> String {
    let count = |s: &Suite| {
        (
            s.cases.len(),
            s.cases.iter().filter(|c| !c.failures.is_empty()).count(),
        )
    };
    let (tests, failures) = suites
        .iter()
        .map(count)
        .fold((0, 0), |(t, f), (a, b)| (t + a, f + b));
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    // Writing to a String cannot fail.
    let _ = writeln!(
        xml,
        "<testsuites name=\"weir test\" tests=\"{tests}\" failures=\"{failures}\">"
    );
    for suite in suites {
        let (tests, failures) = count(suite);
        let _ = writeln!(
            xml,
            "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\">",
            escape(&suite.name)
        );
        for case in &suite.cases {
            let name = escape(&case.name);
            let class = escape(&suite.name);
            match case.failures.first() {
                None => {
                    let _ = writeln!(xml, "    <testcase name=\"{name}\" classname=\"{class}\"/>");
                }
                Some(first) => {
                    let _ = writeln!(xml, "    <testcase name=\"{name}\" classname=\"{class}\">");
                    let _ = writeln!(
                        xml,
                        "      <failure message=\"{}\">{}</failure>",
                        escape(first),
                        escape(&case.failures.join("\n"))
                    );
                    let _ = writeln!(xml, "    </testcase>");
                }
            }
        }
        let _ = writeln!(xml, "  </testsuite>");
    }
    xml.push_str("</testsuites>\n");
    xml
}

/// Text as XML character data or an attribute value; characters XML 1.0 cannot hold at all
/// (control characters other than tab and newlines) become `?`.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_escapes() {
        let xml = report(&[Suite {
            name: "a.test.toml".into(),
            cases: vec![
                Case {
                    name: "ok".into(),
                    failures: vec![],
                },
                Case {
                    name: "<bad> & \"so\"".into(),
                    failures: vec!["body.x: expected 1, got 2\u{1}".into()],
                },
            ],
        }]);
        assert!(xml.contains("<testsuites name=\"weir test\" tests=\"2\" failures=\"1\">"));
        assert!(xml.contains("name=\"&lt;bad&gt; &amp; &quot;so&quot;\""));
        assert!(xml.contains("expected 1, got 2?</failure>"));
    }
}
