//! A plain-text PDF for the H&P note DocumentReference (Canvas takes documents as PDF). One font,
//! wrapped lines, as many pages as the text needs; no dependency for a few hundred bytes of format.

const LINES_PER_PAGE: usize = 54;
const WRAP_AT: usize = 95;

pub(crate) fn render(title: &str, lines: &[String]) -> Vec<u8> {
    let mut wrapped = vec![title.to_owned(), String::new()];
    for line in lines {
        wrapped.extend(wrap(line));
    }
    let pages: Vec<&[String]> = wrapped.chunks(LINES_PER_PAGE).collect();

    // Objects: 1 catalog, 2 pages, 3 font, then (page, content) pairs.
    let mut objects: Vec<String> = Vec::new();
    let kids: Vec<String> = (0..pages.len()).map(|i| format!("{} 0 R", 4 + 2 * i)).collect();
    objects.push("<< /Type /Catalog /Pages 2 0 R >>".into());
    objects.push(format!(
        "<< /Type /Pages /Kids [{}] /Count {} >>",
        kids.join(" "),
        pages.len()
    ));
    // WinAnsi covers Latin-1, so accented names print as written.
    objects.push("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".into());
    for (i, page) in pages.iter().enumerate() {
        let mut stream = String::from("BT /F1 10 Tf 50 760 Td 13 TL\n");
        for line in page.iter() {
            stream.push_str(&format!("({}) Tj T*\n", escape(line)));
        }
        stream.push_str("ET");
        objects.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
            5 + 2 * i
        ));
        objects.push(format!("<< /Length {} >>\nstream\n{stream}\nendstream", stream.len()));
    }

    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::with_capacity(objects.len());
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

fn wrap(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for word in line.split(' ') {
        if !current.is_empty() && current.chars().count() + 1 + word.chars().count() > WRAP_AT {
            out.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
    }
    out.push(current);
    out
}

/// PDF string escaping: Latin-1 letters as octal escapes (WinAnsi shares those codes), anything
/// beyond Latin-1 as `?`.
fn escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '(' => "\\(".to_owned(),
            ')' => "\\)".to_owned(),
            '\\' => "\\\\".to_owned(),
            c if (' '..='~').contains(&c) => c.to_string(),
            c if ('\u{a0}'..='\u{ff}').contains(&c) => format!("\\{:03o}", c as u32),
            _ => "?".to_owned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pdf_with_a_valid_cross_reference_table() {
        let lines: Vec<String> = (0..120)
            .map(|i| format!("line {i} (with parens) and a long tail "))
            .collect();
        let pdf = render("History & Physical", &lines);
        let text = String::from_utf8(pdf.clone()).unwrap();
        assert!(text.starts_with("%PDF-1.4"));
        assert!(text.ends_with("%%EOF\n"));
        assert!(text.contains("/Count 3"));
        assert!(text.contains("\\(with parens\\)"));
        let accented = String::from_utf8(render("x", &["Zoë Núñez 😀".to_owned()])).unwrap();
        assert!(accented.contains("(Zo\\353 N\\372\\361ez ?) Tj"), "{accented}");
        // startxref points at the xref table.
        let at: usize = text
            .rsplit("startxref\n")
            .next()
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(text[at..].starts_with("xref"));
    }
}
