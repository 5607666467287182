//! Date, time and time zones, on jiff's bundled time zone database (it works offline and follows
//! daylight saving).

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Timestamp, Unit, ZonedDateTime as Zoned};
use serde_json::{json, Value};

use crate::ToolError;

pub(crate) fn zone(name: &str) -> Result<TimeZone, ToolError> {
    TimeZone::get(name.trim()).map_err(|_| {
        ToolError::BadArguments(format!(
            "{:?} is not a time zone Hearth knows; use a name like \"Europe/Paris\" or \"America/New_York\"",
            name.trim()
        ))
    })
}

fn describe(z: &Zoned) -> Value {
    json!({
        "date": z.date().to_string(),
        "time": z.time().strftime("%H:%M:%S").to_string(),
        "weekday": format!("{:?}", z.weekday()),
        "time_zone": z.time_zone().iana_name().unwrap_or("UTC"),
        "utc_offset": z.offset().to_string(),
    })
}

/// `"2026-12-08 15:30"`, `"2026-12-08T15:30"`, `"2026-12-08T15:30:00"` or a date alone.
pub(crate) fn parse_local(text: &str) -> Result<DateTime, ToolError> {
    let t = text.trim().replace(' ', "T");
    if let Ok(dt) = t.parse::<DateTime>() {
        return Ok(dt);
    }
    if let Ok(d) = t.parse::<Date>() {
        return Ok(d.to_datetime(jiff::civil::Time::midnight()));
    }
    Err(ToolError::BadArguments(format!(
        "{text:?} is not a date and time; write it like \"2026-12-08 15:30\""
    )))
}

pub(crate) fn current_time(now: Timestamp, z: TimeZone) -> Value {
    describe(&now.to_zoned_datetime(z))
}

pub(crate) fn convert_time(time: &str, from: TimeZone, to: TimeZone) -> Result<Value, ToolError> {
    let local = parse_local(time)?;
    let at = local
        .to_zoned_datetime(from)
        .map_err(|e| ToolError::BadArguments(format!("{time:?} does not exist there: {e}")))?;
    let there = at.with_time_zone(to);
    Ok(json!({"from": describe(&at), "to": describe(&there)}))
}

pub(crate) fn days_between(from: &str, to: &str) -> Result<Value, ToolError> {
    let parse = |s: &str| {
        s.trim().parse::<Date>().map_err(|_| {
            ToolError::BadArguments(format!("{s:?} is not a date; write it like \"2026-12-25\""))
        })
    };
    let (a, b) = (parse(from)?, parse(to)?);
    let span = a
        .until((Unit::Day, b))
        .map_err(|e| ToolError::Failed(e.to_string()))?;
    Ok(json!({"from": a.to_string(), "to": b.to_string(), "days": span.get_days()}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_follow_daylight_saving() {
        let v = convert_time(
            "2026-07-01 12:00",
            zone("Europe/Paris").unwrap(),
            zone("America/New_York").unwrap(),
        )
        .unwrap();
        assert_eq!(v["to"]["time"], "06:00:00");
        let v = convert_time(
            "2026-12-01 12:00",
            zone("Europe/Paris").unwrap(),
            zone("America/New_York").unwrap(),
        )
        .unwrap();
        assert_eq!(v["to"]["time"], "06:00:00");
        let v = convert_time(
            "2026-03-20 12:00",
            zone("Europe/Paris").unwrap(),
            zone("UTC").unwrap(),
        )
        .unwrap();
        assert_eq!(v["to"]["time"], "11:00:00");
        assert!(zone("Mars/Olympus").is_err());
        assert_eq!(
            days_between("2026-12-08", "2026-12-25").unwrap()["days"],
            17
        );
        let now: Timestamp = "2026-12-08T00:05:00Z".parse().unwrap();
        let v = current_time(now, zone("Asia/Tokyo").unwrap());
        assert_eq!(
            (v["date"].as_str(), v["time"].as_str()),
            (Some("2026-12-08"), Some("09:05:00"))
        );
        assert_eq!(v["weekday"], "Tuesday");
    }
}
