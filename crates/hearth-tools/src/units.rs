//! Unit conversion with exact factors (fractions of the SI unit of each quantity), so a mile is
//! exactly 1.609344 km and a round trip gives back what went in. Temperature is the one affine
//! quantity: a scale and an offset.

use num_bigint::BigInt;
use num_rational::BigRational;

use crate::calc::{parse_number, to_decimal};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    Length,
    Mass,
    Volume,
    Temperature,
    Speed,
    Area,
    Data,
}

impl Quantity {
    pub fn name(self) -> &'static str {
        match self {
            Quantity::Length => "length",
            Quantity::Mass => "mass",
            Quantity::Volume => "volume",
            Quantity::Temperature => "temperature",
            Quantity::Speed => "speed",
            Quantity::Area => "area",
            Quantity::Data => "data size",
        }
    }
}

/// Why a conversion has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("{0:?} is not a unit Hearth knows")]
    Unknown(String),
    #[error("cannot convert {from} ({from_q}) to {to} ({to_q}): they measure different things")]
    Incompatible {
        from: String,
        from_q: &'static str,
        to: String,
        to_q: &'static str,
    },
    #[error("{0:?} is not a number")]
    BadNumber(String),
}

/// One unit: its names, quantity, and value in the quantity's base unit as `num/den`
/// (for temperature, kelvin = value × num/den + offset).
struct Unit {
    names: &'static [&'static str],
    q: Quantity,
    num: i64,
    den: i64,
    /// Temperature only: added after scaling, as `offset_num/offset_den` kelvin.
    offset: (i64, i64),
}

const fn u(names: &'static [&'static str], q: Quantity, num: i64, den: i64) -> Unit {
    Unit {
        names,
        q,
        num,
        den,
        offset: (0, 1),
    }
}

use Quantity::*;

/// Base units: metre, kilogram, litre, kelvin, metre per second, square metre, byte.
const UNITS: &[Unit] = &[
    u(
        &[
            "mm",
            "millimeter",
            "millimetre",
            "millimeters",
            "millimetres",
        ],
        Length,
        1,
        1000,
    ),
    u(
        &[
            "cm",
            "centimeter",
            "centimetre",
            "centimeters",
            "centimetres",
        ],
        Length,
        1,
        100,
    ),
    u(&["m", "meter", "metre", "meters", "metres"], Length, 1, 1),
    u(
        &["km", "kilometer", "kilometre", "kilometers", "kilometres"],
        Length,
        1000,
        1,
    ),
    u(&["in", "inch", "inches", "\""], Length, 254, 10000),
    u(&["ft", "foot", "feet", "'"], Length, 3048, 10000),
    u(&["yd", "yard", "yards"], Length, 9144, 10000),
    u(&["mi", "mile", "miles"], Length, 1_609_344, 1000),
    u(&["nmi", "nautical mile", "nautical miles"], Length, 1852, 1),
    u(&["mg", "milligram", "milligrams"], Mass, 1, 1_000_000),
    u(&["g", "gram", "grams", "gramme", "grammes"], Mass, 1, 1000),
    u(
        &["kg", "kilogram", "kilograms", "kilo", "kilos"],
        Mass,
        1,
        1,
    ),
    u(
        &["t", "tonne", "tonnes", "metric ton", "metric tons"],
        Mass,
        1000,
        1,
    ),
    u(
        &["oz", "ounce", "ounces"],
        Mass,
        28_349_523_125,
        1_000_000_000_000,
    ),
    u(
        &["lb", "lbs", "pound", "pounds"],
        Mass,
        45_359_237,
        100_000_000,
    ),
    u(&["st", "stone", "stones"], Mass, 635_029_318, 100_000_000),
    u(
        &[
            "ml",
            "milliliter",
            "millilitre",
            "milliliters",
            "millilitres",
        ],
        Volume,
        1,
        1000,
    ),
    u(
        &[
            "cl",
            "centiliter",
            "centilitre",
            "centiliters",
            "centilitres",
        ],
        Volume,
        1,
        100,
    ),
    u(
        &["dl", "deciliter", "decilitre", "deciliters", "decilitres"],
        Volume,
        1,
        10,
    ),
    u(&["l", "liter", "litre", "liters", "litres"], Volume, 1, 1),
    u(
        &[
            "m3",
            "m³",
            "cubic meter",
            "cubic metre",
            "cubic meters",
            "cubic metres",
        ],
        Volume,
        1000,
        1,
    ),
    u(
        &["tsp", "teaspoon", "teaspoons"],
        Volume,
        492_892_159_375,
        100_000_000_000_000,
    ),
    u(
        &["tbsp", "tablespoon", "tablespoons"],
        Volume,
        1_478_676_478_125,
        100_000_000_000_000,
    ),
    u(
        &["fl oz", "floz", "fluid ounce", "fluid ounces"],
        Volume,
        295_735_295_625,
        10_000_000_000_000,
    ),
    u(&["cup", "cups"], Volume, 2_365_882_365, 10_000_000_000),
    u(&["pt", "pint", "pints"], Volume, 473_176_473, 1_000_000_000),
    u(
        &["qt", "quart", "quarts"],
        Volume,
        946_352_946,
        1_000_000_000,
    ),
    u(
        &["gal", "gallon", "gallons"],
        Volume,
        3_785_411_784,
        1_000_000_000,
    ),
    Unit {
        names: &["c", "°c", "celsius", "degc", "degrees celsius"],
        q: Temperature,
        num: 1,
        den: 1,
        offset: (27315, 100),
    },
    Unit {
        names: &["f", "°f", "fahrenheit", "degf", "degrees fahrenheit"],
        q: Temperature,
        num: 5,
        den: 9,
        // K = (F − 32) × 5/9 + 273.15 = F × 5/9 + 45967/180.
        offset: (45967, 180),
    },
    u(&["k", "kelvin", "kelvins"], Temperature, 1, 1),
    u(
        &["m/s", "mps", "meters per second", "metres per second"],
        Speed,
        1,
        1,
    ),
    u(
        &[
            "km/h",
            "kmh",
            "kph",
            "kilometers per hour",
            "kilometres per hour",
        ],
        Speed,
        1000,
        3600,
    ),
    u(
        &["mph", "mi/h", "miles per hour"],
        Speed,
        1_609_344,
        3_600_000,
    ),
    u(&["kn", "knot", "knots"], Speed, 1852, 3600),
    u(&["ft/s", "fps", "feet per second"], Speed, 3048, 10000),
    u(
        &["mm2", "mm²", "square millimeter", "square millimetre"],
        Area,
        1,
        1_000_000,
    ),
    u(
        &["cm2", "cm²", "square centimeter", "square centimetre"],
        Area,
        1,
        10000,
    ),
    u(
        &[
            "m2",
            "m²",
            "square meter",
            "square metre",
            "square meters",
            "square metres",
        ],
        Area,
        1,
        1,
    ),
    u(
        &[
            "km2",
            "km²",
            "square kilometer",
            "square kilometre",
            "square kilometers",
            "square kilometres",
        ],
        Area,
        1_000_000,
        1,
    ),
    u(&["ha", "hectare", "hectares"], Area, 10000, 1),
    u(&["acre", "acres", "ac"], Area, 40_468_564_224, 10_000_000),
    u(
        &["ft2", "ft²", "sq ft", "square foot", "square feet"],
        Area,
        9_290_304,
        100_000_000,
    ),
    u(
        &["in2", "in²", "sq in", "square inch", "square inches"],
        Area,
        64516,
        100_000_000,
    ),
    u(
        &["mi2", "mi²", "sq mi", "square mile", "square miles"],
        Area,
        2_589_988_110_336,
        1_000_000,
    ),
    u(&["bit", "bits"], Data, 1, 8),
    u(&["b", "byte", "bytes"], Data, 1, 1),
    u(&["kb", "kilobyte", "kilobytes"], Data, 1000, 1),
    u(&["mb", "megabyte", "megabytes"], Data, 1_000_000, 1),
    u(&["gb", "gigabyte", "gigabytes"], Data, 1_000_000_000, 1),
    u(&["tb", "terabyte", "terabytes"], Data, 1_000_000_000_000, 1),
    u(&["kib", "kibibyte", "kibibytes"], Data, 1024, 1),
    u(&["mib", "mebibyte", "mebibytes"], Data, 1_048_576, 1),
    u(&["gib", "gibibyte", "gibibytes"], Data, 1_073_741_824, 1),
    u(
        &["tib", "tebibyte", "tebibytes"],
        Data,
        1_099_511_627_776,
        1,
    ),
];

fn find(name: &str) -> Result<&'static Unit, UnitError> {
    let key = name.trim().to_lowercase();
    let lookup = |k: &str| UNITS.iter().find(|u| u.names.contains(&k));
    lookup(&key)
        // "degrees C" is how people write Celsius too.
        .or_else(|| key.strip_prefix("degrees ").and_then(lookup))
        .ok_or_else(|| UnitError::Unknown(name.trim().to_string()))
}

fn ratio(n: i64, d: i64) -> BigRational {
    BigRational::new(BigInt::from(n), BigInt::from(d))
}

/// A converted value.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    pub value: BigRational,
    /// Rounded to 10 decimals when it does not end sooner.
    pub decimal: String,
    pub exact: bool,
    pub quantity: &'static str,
}

/// Converts `value` (a decimal number, as text so it stays exact) from one unit to another.
pub fn convert(value: &str, from: &str, to: &str) -> Result<Converted, UnitError> {
    let text = value.trim();
    let (neg, digits) = match text.strip_prefix(['-', '−']) {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let v = parse_number(digits).map_err(|_| UnitError::BadNumber(value.to_string()))?;
    let v = if neg { -v } else { v };
    let (f, t) = (find(from)?, find(to)?);
    if f.q != t.q {
        return Err(UnitError::Incompatible {
            from: from.trim().to_string(),
            from_q: f.q.name(),
            to: to.trim().to_string(),
            to_q: t.q.name(),
        });
    }
    let base = v * ratio(f.num, f.den) + ratio(f.offset.0, f.offset.1);
    let out = (base - ratio(t.offset.0, t.offset.1)) / ratio(t.num, t.den);
    let (decimal, exact) = to_decimal(&out, 10);
    Ok(Converted {
        value: out,
        decimal,
        exact,
        quantity: f.q.name(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(v: &str, f: &str, t: &str) -> String {
        match convert(v, f, t) {
            Ok(x) => x.decimal,
            Err(e) => format!("error: {e}"),
        }
    }

    #[test]
    fn conversions_are_exact() {
        assert_eq!(c("1", "mile", "km"), "1.609344");
        assert_eq!(c("1.609344", "km", "mi"), "1");
        assert_eq!(c("12", "in", "ft"), "1");
        assert_eq!(c("100", "C", "F"), "212");
        assert_eq!(c("-40", "°F", "celsius"), "-40");
        assert_eq!(c("0", "K", "C"), "-273.15");
        assert_eq!(c("98.6", "F", "C"), "37");
        assert_eq!(c("100", "km/h", "m/s"), "27.7777777778…");
        assert_eq!(c("1", "acre", "m2"), "4046.8564224");
        assert_eq!(c("1", "GiB", "MB"), "1073.741824");
        assert_eq!(c("8", "bits", "byte"), "1");
        assert_eq!(c("1", "lb", "g"), "453.59237");
        assert_eq!(c("1", "gallon", "l"), "3.785411784");
        assert_eq!(c("2", "cups", "ml"), "473.176473");
        assert_eq!(c("1", "ha", "square metres"), "10000");
    }

    #[test]
    fn wrong_units_are_named() {
        assert_eq!(
            c("3", "kg", "km"),
            "error: cannot convert kg (mass) to km (length): they measure different things"
        );
        assert_eq!(
            c("3", "furlong", "m"),
            "error: \"furlong\" is not a unit Hearth knows"
        );
        assert_eq!(c("three", "m", "ft"), "error: \"three\" is not a number");
    }
}
