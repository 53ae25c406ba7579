//! NPI validation as CMS specifies it: ten digits, the last a Luhn check digit computed over the
//! first nine prefixed with `80840` (the NPI's ISO 7812 issuer prefix). A pharmacy refuses an
//! order whose prescriber NPI fails this before it looks anything up.

/// True when `npi` is ten ASCII digits whose last digit checks out.
pub fn is_valid(npi: &str) -> bool {
    if npi.len() != 10 || !npi.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    // Luhn over "80840" + all ten digits: from the right, every second digit is doubled.
    let digits = b"80840".iter().chain(npi.as_bytes()).map(|b| u32::from(b - b'0'));
    let sum: u32 = digits
        .rev()
        .enumerate()
        .map(|(i, d)| match (i % 2 == 1, d * 2) {
            (true, doubled) if doubled > 9 => doubled - 9,
            (true, doubled) => doubled,
            (false, _) => d,
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::is_valid;

    #[test]
    fn the_clinics_prescribers_and_the_cms_example_pass() {
        assert!(is_valid("1982609764"), "Ali Nolan");
        assert!(is_valid("1164633533"), "Neelima Singh");
        // CMS's worked example in "NPI: Check Digit" (2007).
        assert!(is_valid("1234567893"));
    }

    #[test]
    fn a_wrong_check_digit_or_shape_fails() {
        assert!(!is_valid("1234567890"));
        assert!(!is_valid("1982609765"));
        assert!(!is_valid("198260976"));
        assert!(!is_valid("19826097640"));
        assert!(!is_valid("198260976a"));
        assert!(!is_valid(""));
    }
}
