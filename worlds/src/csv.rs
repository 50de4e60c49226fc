//! The little CSV a world needs (RFC 4180): fields with a comma, quote or line break are
//! quoted, quotes doubled.

use anyhow::{bail, Context, Result};
use std::path::Path;

/// Append one record and its line break to `out`.
pub fn write_record<S: AsRef<str>>(out: &mut String, fields: &[S]) {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let field = field.as_ref();
        if field.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&field.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(field);
        }
    }
    out.push('\n');
}

/// A CSV file with a header line.
pub struct Table {
    header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn read(path: &Path) -> Result<Table> {
        let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        let mut records = parse(&text).with_context(|| format!("parse {}", path.display()))?.into_iter();
        let header = records.next().with_context(|| format!("{} is empty", path.display()))?;
        let rows: Vec<Vec<String>> = records.collect();
        if let Some(bad) = rows.iter().position(|r| r.len() != header.len()) {
            bail!("{}: record {} has {} fields, the header {}", path.display(), bad + 2, rows[bad].len(), header.len());
        }
        Ok(Table { header, rows })
    }

    /// The index of column `name`.
    pub fn column(&self, name: &str) -> Result<usize> {
        self.header.iter().position(|h| h == name).with_context(|| format!("no column {name:?}"))
    }
}

fn parse(text: &str) -> Result<Vec<Vec<String>>> {
    let mut records = Vec::new();
    let (mut record, mut field) = (Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    if quoted {
        bail!("a quoted field is not closed");
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut out = String::new();
        write_record(&mut out, &["zpid", "address", "truth"]);
        write_record(&mut out, &["1", "12 Oak St, Katy, TX 77494", r#"{"a":"b","c":1}"#]);
        let records = parse(&out).unwrap();
        assert_eq!(records[1], ["1", "12 Oak St, Katy, TX 77494", r#"{"a":"b","c":1}"#]);
        assert_eq!(parse("a,b\r\n1,\n").unwrap(), [vec!["a", "b"], vec!["1", ""]]);
    }
}
