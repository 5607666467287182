//! The calculator: a recursive-descent parser over exact fractions (never `eval`).
//!
//! Grammar, loosest first:
//!
//! ```text
//! sum     = product (("+" | "-") product)*
//! product = unary (("*" | "/" | "×" | "÷" | "%") unary)*
//! unary   = "-" unary | "+" unary | power
//! power   = postfix ("^" unary)?            (right-associative: 2^3^2 = 2^9)
//! postfix = atom "%"*                       (a percent sign with nothing after it: 50% = 1/2)
//! atom    = number | "(" sum ")"
//! ```
//!
//! `%` between two operands is the remainder (7 % 3 = 1); after a number with no operand
//! following it is a percentage (50% = 0.5, 200 * 15% = 30). Numbers are decimals
//! (`1_000.25` or `1,000.25` are not read: one way to write a number, no guessing) with an
//! optional exponent (`1.5e3`). Powers take whole exponents only, which keeps every answer
//! exact; roots and logarithms are not offered rather than answered approximately.

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{Signed, ToPrimitive, Zero};

/// Longest expression read, in characters.
pub const MAX_EXPRESSION_CHARS: usize = 500;
/// Largest exponent magnitude, and the largest answer in bits: `9^9^9` is refused in words
/// rather than computed for minutes.
const MAX_EXPONENT: u32 = 4096;
const MAX_BITS: u64 = 16_384;
/// The bits of all powers in one expression together: each one is cheap by squaring, but a
/// 500-character chain of the largest ones must not hold a core for long.
const MAX_POWER_BITS: u64 = 8 * MAX_BITS;
/// Digits after the decimal point of an answer that does not end.
const DECIMALS: usize = 12;
/// Deepest nesting of parentheses and unary signs (the parser recurses on them).
const MAX_DEPTH: usize = 200;

/// Why an expression has no answer, in words for the person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalcError {
    #[error("the expression is empty")]
    Empty,
    #[error("the expression is longer than {MAX_EXPRESSION_CHARS} characters")]
    TooLong,
    #[error("unexpected {found:?} at character {at}")]
    Unexpected { found: String, at: usize },
    #[error("the expression ends where a number or '(' should follow")]
    UnexpectedEnd,
    #[error("a '(' at character {at} is never closed")]
    Unclosed { at: usize },
    #[error("division by zero")]
    DivisionByZero,
    #[error("powers take whole-number exponents only (got {0}), so that answers stay exact")]
    FractionalPower(String),
    #[error("the exponent {0} is too large (at most {MAX_EXPONENT})")]
    ExponentTooLarge(String),
    #[error("the expression asks for too many large powers (at most {MAX_POWER_BITS} bits of them in all)")]
    TooMuchWork,
    #[error("the answer would be too large to write out")]
    TooLarge,
    #[error("the expression is nested too deeply")]
    TooDeep,
    #[error("{0:?} is not a number")]
    BadNumber(String),
}

/// An exact answer and how it is written.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub value: BigRational,
    /// Exact decimal when it ends, else rounded to 12 decimals with `…`.
    pub decimal: String,
    /// `p/q` when the answer is not a whole number.
    pub fraction: Option<String>,
    /// Whether `decimal` is the exact value.
    pub exact: bool,
}

/// Evaluates `expr` exactly.
pub fn evaluate(expr: &str) -> Result<Answer, CalcError> {
    if expr.chars().count() > MAX_EXPRESSION_CHARS {
        return Err(CalcError::TooLong);
    }
    let tokens = lex(expr)?;
    if tokens.is_empty() {
        return Err(CalcError::Empty);
    }
    let mut p = Parser {
        tokens,
        pos: 0,
        depth: 0,
        power_bits: 0,
    };
    let value = p.sum()?;
    if let Some(t) = p.tokens.get(p.pos) {
        return Err(match t.kind {
            Tok::Close => CalcError::Unexpected {
                found: ")".into(),
                at: t.at,
            },
            _ => CalcError::Unexpected {
                found: t.text.clone(),
                at: t.at,
            },
        });
    }
    Ok(describe(value))
}

fn describe(value: BigRational) -> Answer {
    let (decimal, exact) = to_decimal(&value, DECIMALS);
    let fraction = (!value.is_integer()).then(|| format!("{}/{}", value.numer(), value.denom()));
    Answer {
        value,
        decimal,
        fraction,
        exact,
    }
}

/// `value` in decimal: exact when its expansion ends within `places` digits (trailing zeros
/// dropped), else rounded half away from zero and marked inexact.
pub fn to_decimal(value: &BigRational, places: usize) -> (String, bool) {
    let neg = value.is_negative();
    let v = value.abs();
    let scale = BigInt::from(10u8).pow(places as u32);
    let scaled = v.numer() * &scale;
    let (q, r) = (&scaled / v.denom(), &scaled % v.denom());
    let exact = r.is_zero();
    let q = if !exact && (r * 2u8) >= *v.denom() {
        q + 1u8
    } else {
        q
    };
    let digits = q.to_string();
    let digits = if digits.len() <= places {
        format!("{}{digits}", "0".repeat(places + 1 - digits.len()))
    } else {
        digits
    };
    let (int, frac) = digits.split_at(digits.len() - places);
    let frac = frac.trim_end_matches('0');
    let mut out = String::new();
    if neg && (int != "0" || !frac.is_empty()) {
        out.push('-');
    }
    out.push_str(int);
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    if !exact {
        out.push('…');
    }
    (out, exact)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Num,
    Plus,
    Minus,
    Times,
    Divide,
    Percent,
    Caret,
    Open,
    Close,
}

#[derive(Debug, Clone)]
struct Token {
    kind: Tok,
    text: String,
    /// Character position (1-based) for messages.
    at: usize,
    value: Option<BigRational>,
}

fn lex(expr: &str) -> Result<Vec<Token>, CalcError> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let at = i + 1;
        let single = match c {
            '+' => Some(Tok::Plus),
            '-' | '−' => Some(Tok::Minus),
            '*' | '×' | '·' => Some(Tok::Times),
            '/' | '÷' => Some(Tok::Divide),
            '%' => Some(Tok::Percent),
            '^' => Some(Tok::Caret),
            '(' => Some(Tok::Open),
            ')' => Some(Tok::Close),
            _ => None,
        };
        if let Some(kind) = single {
            out.push(Token {
                kind,
                text: c.to_string(),
                at,
                value: None,
            });
            i += 1;
            continue;
        }
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_digit() || c == '.' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            // An exponent: e or E, an optional sign, digits.
            if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                let mut j = i + 1;
                if j < chars.len() && (chars[j] == '+' || chars[j] == '-') {
                    j += 1;
                }
                if j < chars.len() && chars[j].is_ascii_digit() {
                    while j < chars.len() && chars[j].is_ascii_digit() {
                        j += 1;
                    }
                    i = j;
                }
            }
            let text: String = chars[start..i].iter().collect();
            let value = parse_number(&text)?;
            out.push(Token {
                kind: Tok::Num,
                text,
                at,
                value: Some(value),
            });
            continue;
        }
        return Err(CalcError::Unexpected {
            found: c.to_string(),
            at,
        });
    }
    Ok(out)
}

/// A decimal literal as an exact fraction.
pub fn parse_number(text: &str) -> Result<BigRational, CalcError> {
    let bad = || CalcError::BadNumber(text.to_string());
    let (mantissa, exp) = match text.find(['e', 'E']) {
        Some(at) => {
            let e: i64 = text[at + 1..].parse().map_err(|_| bad())?;
            (&text[..at], e)
        }
        None => (text, 0),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, f),
        None => (mantissa, ""),
    };
    if (int.is_empty() && frac.is_empty())
        || !int.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
    {
        return Err(bad());
    }
    if exp.unsigned_abs() > MAX_EXPONENT as u64 {
        return Err(CalcError::ExponentTooLarge(exp.to_string()));
    }
    let digits: BigInt = format!("{int}{frac}0").parse().map_err(|_| bad())?;
    let digits = digits / 10u8;
    let shift = exp - frac.len() as i64;
    let ten = BigInt::from(10u8);
    Ok(if shift >= 0 {
        BigRational::from_integer(digits * ten.pow(shift as u32))
    } else {
        BigRational::new(digits, ten.pow((-shift) as u32))
    })
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
    /// Bits of the powers computed so far, against `MAX_POWER_BITS`.
    power_bits: u64,
}

impl Parser {
    fn peek(&self) -> Option<Tok> {
        self.tokens.get(self.pos).map(|t| t.kind)
    }

    fn deeper(&mut self) -> Result<(), CalcError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(CalcError::TooDeep);
        }
        Ok(())
    }

    fn sum(&mut self) -> Result<BigRational, CalcError> {
        let mut v = self.product()?;
        while let Some(op @ (Tok::Plus | Tok::Minus)) = self.peek() {
            self.pos += 1;
            let r = self.product()?;
            v = if op == Tok::Plus { v + r } else { v - r };
            check_size(&v)?;
        }
        Ok(v)
    }

    fn product(&mut self) -> Result<BigRational, CalcError> {
        let mut v = self.unary()?;
        while let Some(op @ (Tok::Times | Tok::Divide | Tok::Percent)) = self.peek() {
            self.pos += 1;
            let r = self.unary()?;
            v = match op {
                Tok::Times => v * r,
                Tok::Divide => {
                    if r.is_zero() {
                        return Err(CalcError::DivisionByZero);
                    }
                    v / r
                }
                _ => {
                    if r.is_zero() {
                        return Err(CalcError::DivisionByZero);
                    }
                    // The remainder takes the dividend's sign, as in most calculators.
                    let q = (&v / &r).trunc();
                    v - r * q
                }
            };
            check_size(&v)?;
        }
        Ok(v)
    }

    fn unary(&mut self) -> Result<BigRational, CalcError> {
        match self.peek() {
            Some(Tok::Minus) => {
                self.pos += 1;
                self.deeper()?;
                let v = -self.unary()?;
                self.depth -= 1;
                Ok(v)
            }
            Some(Tok::Plus) => {
                self.pos += 1;
                self.deeper()?;
                let v = self.unary()?;
                self.depth -= 1;
                Ok(v)
            }
            _ => self.power(),
        }
    }

    fn power(&mut self) -> Result<BigRational, CalcError> {
        let base = self.postfix()?;
        if self.peek() != Some(Tok::Caret) {
            return Ok(base);
        }
        self.pos += 1;
        self.deeper()?;
        // The exponent binds like a unary, so 2^-1 and 2^3^2 read as written.
        let exp = self.unary()?;
        self.depth -= 1;
        pow(base, exp, &mut self.power_bits)
    }

    fn postfix(&mut self) -> Result<BigRational, CalcError> {
        let mut v = self.atom()?;
        // A percent sign is a percentage when no operand follows it; else it is the remainder
        // operator, left for `product`.
        while self.peek() == Some(Tok::Percent) && !self.operand_at(self.pos + 1) {
            self.pos += 1;
            v /= BigRational::from_integer(BigInt::from(100u8));
        }
        Ok(v)
    }

    fn operand_at(&self, i: usize) -> bool {
        let starts = |t: &Token| matches!(t.kind, Tok::Num | Tok::Open);
        match self.tokens.get(i) {
            Some(t) if starts(t) => true,
            // `50 % -3`: a sign written against its number belongs to it; `50% - 3` subtracts.
            Some(t) if matches!(t.kind, Tok::Minus | Tok::Plus) => self
                .tokens
                .get(i + 1)
                .is_some_and(|n| starts(n) && n.at == t.at + 1),
            _ => false,
        }
    }

    fn atom(&mut self) -> Result<BigRational, CalcError> {
        let Some(t) = self.tokens.get(self.pos).cloned() else {
            return Err(CalcError::UnexpectedEnd);
        };
        self.pos += 1;
        match t.kind {
            Tok::Num => Ok(t.value.unwrap_or_else(BigRational::zero)),
            Tok::Open => {
                self.deeper()?;
                let v = self.sum()?;
                self.depth -= 1;
                if self.peek() != Some(Tok::Close) {
                    return Err(match self.tokens.get(self.pos) {
                        Some(n) => CalcError::Unexpected {
                            found: n.text.clone(),
                            at: n.at,
                        },
                        None => CalcError::Unclosed { at: t.at },
                    });
                }
                self.pos += 1;
                Ok(v)
            }
            _ => Err(CalcError::Unexpected {
                found: t.text,
                at: t.at,
            }),
        }
    }
}

fn check_size(v: &BigRational) -> Result<(), CalcError> {
    if v.numer().bits() > MAX_BITS || v.denom().bits() > MAX_BITS {
        return Err(CalcError::TooLarge);
    }
    Ok(())
}

fn pow(base: BigRational, exp: BigRational, spent: &mut u64) -> Result<BigRational, CalcError> {
    if !exp.is_integer() {
        return Err(CalcError::FractionalPower(to_decimal(&exp, 6).0));
    }
    let e = exp.to_integer();
    let mag = e
        .abs()
        .to_u32()
        .filter(|m| *m <= MAX_EXPONENT)
        .ok_or_else(|| CalcError::ExponentTooLarge(e.to_string()))?;
    // Cheap size bound before multiplying: bits of the result ≈ bits of the base × exponent.
    let bits = base.numer().bits().max(base.denom().bits());
    let cost = bits.saturating_mul(mag as u64);
    if cost > MAX_BITS + 64 {
        return Err(CalcError::TooLarge);
    }
    *spent = spent.saturating_add(cost);
    if *spent > MAX_POWER_BITS {
        return Err(CalcError::TooMuchWork);
    }
    if e.is_negative() && base.is_zero() {
        return Err(CalcError::DivisionByZero);
    }
    // a/b is in lowest terms, so a^n/b^n is too: two powers by squaring and no gcd, where
    // multiplying n times reduced the fraction (a gcd) at every step.
    let (n, d) = base.into_raw();
    let mut out = BigRational::new_raw(n.pow(mag), d.pow(mag));
    if e.is_negative() {
        out = out.recip();
    }
    check_size(&out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calc(e: &str) -> String {
        match evaluate(e) {
            Ok(a) => a.decimal,
            Err(err) => format!("error: {err}"),
        }
    }

    #[test]
    fn arithmetic_is_exact_and_follows_precedence() {
        assert_eq!(calc("0.1 + 0.2"), "0.3");
        assert_eq!(calc("2 + 3 * 4"), "14");
        assert_eq!(calc("(2 + 3) * 4"), "20");
        assert_eq!(calc("-2^2"), "-4");
        assert_eq!(calc("(-2)^2"), "4");
        assert_eq!(calc("2^3^2"), "512");
        assert_eq!(calc("2^-2"), "0.25");
        assert_eq!(calc("10 - 4 - 3"), "3");
        assert_eq!(calc("100 / 8 / 5"), "2.5");
        assert_eq!(calc("--3"), "3");
        assert_eq!(calc("1.5e3 * 2"), "3000");
        assert_eq!(calc("12 × 7 ÷ 4"), "21");
        assert_eq!(
            calc("99999999999999999999 * 99999999999999999999"),
            "9999999999999999999800000000000000000001"
        );
    }

    #[test]
    fn percent_and_remainder() {
        assert_eq!(calc("7 % 3"), "1");
        assert_eq!(calc("-7 % 3"), "-1");
        assert_eq!(calc("50%"), "0.5");
        assert_eq!(calc("200 * 15%"), "30");
        assert_eq!(calc("(1 + 1)% * 50"), "1");
        assert_eq!(calc("7 % (1 + 2)"), "1");
        // A sign written against its number makes it the remainder's operand; a spaced minus
        // after a percentage is a subtraction.
        assert_eq!(calc("50 % -3"), "2");
        assert_eq!(calc("50 % +3"), "2");
        assert_eq!(calc("50% - 3"), "-2.5");
    }

    #[test]
    fn big_powers_are_exact_and_a_chain_of_them_is_refused_in_words() {
        // One large power has its exact answer (4096 × log10 15 ≈ 4817.1 digits).
        let a = evaluate("15^4096").unwrap();
        assert_eq!(a.decimal.len(), 4818);
        assert!(a.decimal.ends_with("5"));
        let a = evaluate("(3/5)^4096").unwrap();
        let f = a.fraction.expect("a fraction");
        assert!(f.ends_with(&format!("/{}", BigInt::from(5u8).pow(4096))));
        assert_eq!(calc("(-2)^-3"), "-0.125");
        assert_eq!(calc("0^0"), "1");
        // Each power alone is allowed, but together they are more work than one call may ask.
        let chain = vec!["15^4096"; 60].join("+");
        assert!(chain.len() <= MAX_EXPRESSION_CHARS);
        assert_eq!(
            calc(&chain),
            format!("error: the expression asks for too many large powers (at most {MAX_POWER_BITS} bits of them in all)")
        );
    }

    #[test]
    fn fractions_that_do_not_end_are_marked() {
        let a = evaluate("1/3").unwrap();
        assert_eq!(a.decimal, "0.333333333333…");
        assert_eq!(a.fraction.as_deref(), Some("1/3"));
        assert!(!a.exact);
        assert_eq!(calc("2/3"), "0.666666666667…");
        assert_eq!(calc("-2/3"), "-0.666666666667…");
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert_eq!(calc("1/0"), "error: division by zero");
        assert_eq!(calc("5 % 0"), "error: division by zero");
        assert_eq!(calc(""), "error: the expression is empty");
        assert_eq!(
            calc("2 +"),
            "error: the expression ends where a number or '(' should follow"
        );
        assert_eq!(
            calc("(1 + 2"),
            "error: a '(' at character 1 is never closed"
        );
        assert_eq!(calc("1 + 2)"), "error: unexpected \")\" at character 6");
        assert_eq!(
            calc("2 ^ 0.5"),
            "error: powers take whole-number exponents only (got 0.5), so that answers stay exact"
        );
        assert_eq!(
            calc("9^9^9"),
            "error: the exponent 387420489 is too large (at most 4096)"
        );
        assert_eq!(calc("x + 1"), "error: unexpected \"x\" at character 1");
        assert_eq!(calc("1..2"), "error: \"1..2\" is not a number");
        assert!(calc(&"(".repeat(300)).contains("nested too deeply"));
        assert!(calc("10^4000 * 10^4000 * 10^4000").contains("too large"));
    }
}
