//! Engineering units as OPC UA's `EUInformation`: the unit text from the config as display
//! name, and the UNECE Recommendation 20 code where the text is a common unit, so that
//! clients that understand units (trend tools, historians) do not have to parse text.

use opcua::types::{EUInformation, LocalizedText, UAString};

/// The namespace of UNECE unit ids (OPC UA Part 8, 5.6.3).
pub const UNECE_NAMESPACE: &str = "http://www.opcfoundation.org/UA/units/un/cefact";

/// Common unit texts and their UNECE common codes. Matching ignores case only where the
/// unit is unambiguous without it (`mA` vs `MA` is not, so case is kept as written first).
const CODES: &[(&str, &str)] = &[
    ("°C", "CEL"),
    ("degC", "CEL"),
    ("K", "KEL"),
    ("°F", "FAH"),
    ("bar", "BAR"),
    ("mbar", "MBR"),
    ("Pa", "PAL"),
    ("hPa", "A97"),
    ("kPa", "KPA"),
    ("MPa", "MPA"),
    ("psi", "PS"),
    ("%", "P1"),
    ("ppm", "59"),
    ("m", "MTR"),
    ("cm", "CMT"),
    ("mm", "MMT"),
    ("µm", "4H"),
    ("km", "KTM"),
    ("m/s", "MTS"),
    ("m/min", "2X"),
    ("mm/s", "C16"),
    ("km/h", "KMH"),
    ("m/s²", "MSK"),
    ("A", "AMP"),
    ("mA", "4K"),
    ("V", "VLT"),
    ("mV", "2Z"),
    ("kV", "KVT"),
    ("W", "WTT"),
    ("kW", "KWT"),
    ("MW", "MAW"),
    ("Wh", "WHR"),
    ("kWh", "KWH"),
    ("MWh", "MWH"),
    ("VA", "D46"),
    ("kVA", "KVA"),
    ("var", "D44"),
    ("kvar", "KVR"),
    ("Ω", "OHM"),
    ("ohm", "OHM"),
    ("Hz", "HTZ"),
    ("rpm", "RPM"),
    ("1/min", "RPM"),
    ("s", "SEC"),
    ("ms", "C26"),
    ("min", "MIN"),
    ("h", "HUR"),
    ("g", "GRM"),
    ("kg", "KGM"),
    ("t", "TNE"),
    ("l", "LTR"),
    ("L", "LTR"),
    ("m³", "MTQ"),
    ("m3", "MTQ"),
    ("l/min", "L2"),
    ("l/h", "E32"),
    ("m³/h", "MQH"),
    ("m3/h", "MQH"),
    ("kg/h", "E93"),
    ("t/h", "E18"),
    ("N", "NEW"),
    ("kN", "B47"),
    ("Nm", "NU"),
    ("N·m", "NU"),
    ("J", "JOU"),
    ("kJ", "KJO"),
    ("lx", "LUX"),
    ("dB", "2N"),
];

/// The UNECE common code for a unit text, if it is one we know.
pub fn unece_code(units: &str) -> Option<&'static str> {
    let u = units.trim();
    CODES
        .iter()
        .find(|(text, _)| *text == u)
        .map(|(_, code)| *code)
}

/// The OPC UA `UnitId` of a common code: its (up to three) ASCII characters as the bytes of
/// an integer (OPC UA Part 8, 5.6.3), e.g. `CEL` → 0x43454C.
pub fn unit_id(code: &str) -> i32 {
    code.bytes()
        .take(3)
        .fold(0i32, |acc, b| (acc << 8) | i32::from(b))
}

pub fn eu_information(units: &str) -> EUInformation {
    EUInformation {
        namespace_uri: UAString::from(UNECE_NAMESPACE),
        // -1: no id for this unit, the display name is all a client gets.
        unit_id: unece_code(units).map_or(-1, unit_id),
        display_name: LocalizedText::new("", units),
        description: LocalizedText::new("", units),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_units_get_their_unece_id() {
        assert_eq!(unit_id("CEL"), 4_408_652);
        assert_eq!(eu_information("°C").unit_id, 4_408_652);
        assert_eq!(eu_information("bar").unit_id, unit_id("BAR"));
        assert_eq!(eu_information("m/min").unit_id, unit_id("2X"));
    }

    #[test]
    fn unknown_units_keep_their_text() {
        let eu = eu_information("strokes/shift");
        assert_eq!(eu.unit_id, -1);
        assert_eq!(eu.display_name.text.as_ref(), "strokes/shift");
    }
}
