//! Finds the line a field path (`load.rate`, `regions[2].name`) stands on in
//! a scenario file, so errors can point at it. `config` keeps no positions,
//! so this reads the text itself: a best effort for the plain block layouts
//! scenarios use (YAML mappings and `- ` lists, TOML tables and `[[arrays]]`);
//! when it cannot tell, it says nothing rather than guess.

/// One step of a field path.
#[derive(Debug, PartialEq)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

fn steps(path: &str) -> Vec<Step<'_>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, rest) = part.split_once('[').unwrap_or((part, ""));
        if !key.is_empty() {
            out.push(Step::Key(key));
        }
        for index in rest.split('[') {
            if let Some(Ok(i)) = index.strip_suffix(']').map(str::parse) {
                out.push(Step::Index(i));
            }
        }
    }
    out
}

/// 1-based line of `path` in YAML `text`, if it can be found.
pub fn yaml_line(text: &str, path: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let meaningful = |l: &str| !l.trim().is_empty() && !l.trim_start().starts_with('#');
    // Search window: lines [from, to) whose indentation is greater than `parent`.
    let (mut from, mut to, mut parent): (usize, usize, Option<usize>) = (0, lines.len(), None);
    let mut found = None;
    for step in steps(path) {
        let inside = |l: &str| parent.is_none_or(|p| indent(l) > p);
        match step {
            Step::Key(key) => {
                let hit = (from..to).find(|&i| {
                    let l = lines[i];
                    let body = l.trim_start().trim_start_matches("- ");
                    meaningful(l) && inside(l) && (body.starts_with(&format!("{key}:")))
                })?;
                // The key's own indentation (a `- key:` item counts its dash).
                let own = indent(lines[hit])
                    + (lines[hit].trim_start().len()
                        - lines[hit].trim_start().trim_start_matches("- ").len());
                // Its block ends at the next line indented no deeper than it.
                let end = (hit + 1..to)
                    .find(|&i| meaningful(lines[i]) && indent(lines[i]) <= indent(lines[hit]))
                    .unwrap_or(to);
                found = Some(hit);
                parent = Some(own);
                from = hit + 1;
                to = end;
            }
            Step::Index(n) => {
                let items: Vec<usize> = (from..to)
                    .filter(|&i| {
                        meaningful(lines[i])
                            && lines[i].trim_start().starts_with("- ")
                            && inside(lines[i])
                    })
                    .collect();
                let item_indent = items.iter().map(|&i| indent(lines[i])).min()?;
                let items: Vec<usize> = items
                    .into_iter()
                    .filter(|&i| indent(lines[i]) == item_indent)
                    .collect();
                let hit = *items.get(n)?;
                let end = items.get(n + 1).copied().unwrap_or(to);
                found = Some(hit);
                // Keys of the item sit after "- ", or on following lines.
                parent = Some(item_indent.saturating_sub(1));
                from = hit;
                to = end;
            }
        }
    }
    found.map(|i| i + 1)
}

/// 1-based line of `path` in TOML `text`, if it can be found.
pub fn toml_line(text: &str, path: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let steps = steps(path);
    let (last, tables) = steps.split_last()?;
    let Step::Key(last) = last else { return None };
    // The table header the field lives under: `[a.b]`, or the n-th `[[a]]`.
    let (from, to);
    let mut header = String::new();
    let mut array_index = None;
    for step in tables {
        match step {
            Step::Key(k) => {
                if !header.is_empty() {
                    header.push('.');
                }
                header.push_str(k);
            }
            Step::Index(i) => array_index = Some(*i),
        }
    }
    if !header.is_empty() {
        let headers: Vec<usize> = match array_index {
            Some(_) => (0..lines.len())
                .filter(|&i| lines[i].trim() == format!("[[{header}]]"))
                .collect(),
            None => (0..lines.len())
                .filter(|&i| lines[i].trim() == format!("[{header}]"))
                .collect(),
        };
        let start = *headers.get(array_index.unwrap_or(0))?;
        from = start + 1;
        to = (from..lines.len())
            .find(|&i| lines[i].trim_start().starts_with('['))
            .unwrap_or(lines.len());
    } else {
        from = 0;
        to = (0..lines.len())
            .find(|&i| lines[i].trim_start().starts_with('['))
            .unwrap_or(lines.len());
    }
    (from..to)
        .find(|&i| {
            let l = lines[i].trim_start();
            l.strip_prefix(last)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "name: x\ntarget:\n  url: http://h/\n  region_urls:\n    eu-wset: http://h/\nload:\n  model: open\n  rate: -5\n# comment\nregions:\n  - name: us-east\n    agents: 2\n  - name: eu-west\n    weight: 0\n";

    #[test]
    fn finds_yaml_fields() {
        assert_eq!(yaml_line(YAML, "load.rate"), Some(8));
        assert_eq!(yaml_line(YAML, "load.model"), Some(7));
        assert_eq!(yaml_line(YAML, "target.region_urls.eu-wset"), Some(5));
        assert_eq!(yaml_line(YAML, "regions[0].agents"), Some(12));
        assert_eq!(yaml_line(YAML, "regions[1].name"), Some(13));
        assert_eq!(yaml_line(YAML, "regions[1].weight"), Some(14));
        assert_eq!(yaml_line(YAML, "load.missing"), None);
    }

    #[test]
    fn finds_toml_fields() {
        let toml = "name = \"x\"\n[load]\nmodel = \"open\"\nrate = -5\n[[regions]]\nname = \"a\"\n[[regions]]\nname = \"b\"\nweight = 0\n";
        assert_eq!(toml_line(toml, "load.rate"), Some(4));
        assert_eq!(toml_line(toml, "regions[1].weight"), Some(9));
        assert_eq!(toml_line(toml, "regions[0].name"), Some(6));
        assert_eq!(toml_line(toml, "name"), Some(1));
    }
}
