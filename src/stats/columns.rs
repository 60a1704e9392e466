//! Aligned columns for the `stats` terminal reports: the first columns left-aligned, the
//! rest (numbers) right-aligned, two spaces apart. Pure.

use std::fmt::Write as _;

/// Each row of `rows` as one line (without its newline), every column as wide as its
/// widest cell; the first `left` columns are left-aligned, the others right-aligned.
pub fn align(rows: &[Vec<String>], left: usize) -> Vec<String> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; columns];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    rows.iter()
        .map(|row| {
            let mut line = String::new();
            for (i, (cell, &width)) in row.iter().zip(&widths).enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = width - cell.chars().count();
                if i < left {
                    let last = i + 1 == row.len();
                    line.push_str(cell);
                    if !last {
                        line.extend(std::iter::repeat_n(' ', pad));
                    }
                } else {
                    let _ = write!(line, "{}{cell}", " ".repeat(pad));
                }
            }
            line
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|cell| (*cell).to_owned()).collect()
    }

    #[test]
    fn text_columns_go_left_and_numbers_right() {
        let rows = [
            row(&["name", "n"]),
            row(&["GET /a", "12"]),
            row(&["→", "3"]),
        ];
        assert_eq!(align(&rows, 1), ["name     n", "GET /a  12", "→        3"]);
    }
}
