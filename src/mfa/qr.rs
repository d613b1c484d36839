//! QR rendering of enrollment URIs: inline SVG for the enrollment page, Unicode blocks for a terminal.
//! The encoded data never appears as text in the output, so an SVG is safe to inline in HTML.

use qrcode::render::{svg, unicode};
use qrcode::{EcLevel, QrCode};

use super::MfaError;

/// Minimum width and height of the SVG, in pixels.
const SVG_MIN_PX: u32 = 200;

fn encode(data: &str) -> Result<QrCode, MfaError> {
    QrCode::with_error_correction_level(data.as_bytes(), EcLevel::M).map_err(|_| MfaError::Qr)
}

/// An `<svg>` element (no XML prolog, no scripts, links or external resources) encoding `data`
/// with medium error correction, at least 200 px wide, black on white with a quiet zone.
pub fn svg(data: &str) -> Result<String, MfaError> {
    let image = encode(data)?
        .render::<svg::Color<'_>>()
        .min_dimensions(SVG_MIN_PX, SVG_MIN_PX)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .quiet_zone(true)
        .build();
    // The renderer emits an XML declaration, which does not belong inside HTML; the rest is
    // an <svg> holding one <rect> and one <path> made of numbers only.
    let start = image.find("<svg").ok_or(MfaError::Qr)?;
    let element = image.get(start..).ok_or(MfaError::Qr)?;
    Ok(element.replacen("<svg ", r#"<svg role="img" aria-label="QR code" "#, 1))
}

/// `data` as a QR code drawn with Unicode half blocks, one text line per two module rows, for
/// printing in a terminal. Light modules are drawn as blocks, which suits the usual light-on-dark
/// terminal; the quiet zone is included so phones find the code.
pub fn terminal(data: &str) -> Result<String, MfaError> {
    Ok(encode(data)?
        .render::<unicode::Dense1x2>()
        .dark_color(unicode::Dense1x2::Light)
        .light_color(unicode::Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const URI: &str = "otpauth://totp/Helpdesk:alice%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Helpdesk&algorithm=SHA1&digits=6&period=30";

    fn dimension(svg: &str, attr: &str) -> u32 {
        let key = format!(" {attr}=\"");
        let start = svg.find(&key).unwrap() + key.len();
        let rest = svg.get(start..).unwrap();
        rest.get(..rest.find('"').unwrap())
            .unwrap()
            .parse()
            .unwrap()
    }

    #[test]
    fn svg_is_a_bare_element_of_at_least_200_pixels() {
        let out = svg(URI).unwrap();
        assert!(
            out.starts_with(
                r#"<svg role="img" aria-label="QR code" xmlns="http://www.w3.org/2000/svg""#
            ),
            "{out}"
        );
        assert!(out.ends_with("</svg>"), "{out}");
        assert!(dimension(&out, "width") >= 200);
        assert!(dimension(&out, "height") >= 200);
    }

    #[test]
    fn svg_is_safe_to_inline_in_html_even_for_hostile_data() {
        let hostile = "</svg><script>alert(1)</script><a href=\"javascript:x\">&amp;";
        let out = svg(hostile).unwrap();
        for needle in [
            "<script",
            "href",
            "javascript",
            "<?xml",
            "<!",
            "&",
            "<a",
            "url(",
        ] {
            assert!(!out.contains(needle), "found {needle:?} in {out}");
        }
        assert_eq!(out.matches("<svg").count(), 1);
        assert_eq!(out.matches("</svg>").count(), 1);
    }

    #[test]
    fn svg_refuses_data_too_large_for_a_qr_code() {
        assert_eq!(svg(&"x".repeat(5_000)), Err(MfaError::Qr));
    }

    #[test]
    fn terminal_rendering_uses_half_blocks_two_rows_per_line() {
        let out = terminal(URI).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        let width = lines[0].chars().count();
        assert!(lines.iter().all(|l| l.chars().count() == width));
        // Modules plus the 4-module quiet zone on both sides; rows are paired into lines.
        assert_eq!(lines.len(), width.div_ceil(2));
        assert!(out
            .chars()
            .all(|c| matches!(c, ' ' | '\n' | '\u{2580}' | '\u{2584}' | '\u{2588}')));
        assert!(out.contains('\u{2588}'));
    }

    #[test]
    fn terminal_refuses_data_too_large_for_a_qr_code() {
        assert_eq!(terminal(&"x".repeat(5_000)), Err(MfaError::Qr));
    }
}
