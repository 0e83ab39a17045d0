//! Quote arithmetic, payment allocation and receivable ageing. Exact decimals only.
//!
//! Rounding rule: every money amount is rounded half away from zero to cents at the
//! line level, and totals are sums of rounded line amounts, so a printed quote always
//! adds up. The header discount is spread over the lines in proportion to their net,
//! the rounding remainder going to the largest line.

use chrono::NaiveDate;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Rounds to cents, half away from zero.
pub fn cents(d: Decimal) -> Decimal {
    let mut r = d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    r.rescale(2);
    r
}

fn hundred() -> Decimal {
    Decimal::from(100)
}

/// One quote line as entered.
#[derive(Debug, Clone, PartialEq)]
pub struct LineInput {
    pub quantity: Decimal,
    pub unit_list_price: Decimal,
    pub unit_price: Decimal,
    /// Percent, 0..=100.
    pub discount_pct: Decimal,
    /// Percent, 0..=100.
    pub tax_rate: Decimal,
    pub unit_cost: Decimal,
}

/// Computed amounts of one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineAmounts {
    /// quantity x list price.
    pub list_amount: Decimal,
    /// After the line discount and its share of the header discount, before tax.
    pub net_amount: Decimal,
    pub tax_amount: Decimal,
    pub total: Decimal,
}

/// Computed totals of a quote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuoteTotals {
    pub list_total: Decimal,
    /// Sum of line nets after line discounts, before the header discount.
    pub subtotal: Decimal,
    pub header_discount_amount: Decimal,
    /// subtotal - header discount; the amount taxed.
    pub net_amount: Decimal,
    /// list_total - net_amount: everything given away against list price.
    pub discount_amount: Decimal,
    /// discount_amount / list_total in percent (two decimals).
    pub effective_discount_pct: Decimal,
    pub tax_amount: Decimal,
    pub total: Decimal,
    pub cost_total: Decimal,
    /// net_amount - cost_total.
    pub gross_margin: Decimal,
}

/// Computes line amounts and totals.
pub fn compute_quote(lines: &[LineInput], header_discount_pct: Decimal) -> (Vec<LineAmounts>, QuoteTotals) {
    let list: Vec<Decimal> = lines.iter().map(|l| cents(l.quantity * l.unit_list_price)).collect();
    let before_header: Vec<Decimal> = lines
        .iter()
        .map(|l| cents(cents(l.quantity * l.unit_price) * (hundred() - l.discount_pct) / hundred()))
        .collect();
    let subtotal: Decimal = before_header.iter().copied().sum();
    let header = cents(subtotal * header_discount_pct / hundred());
    // Spread the header discount proportionally; the remainder goes to the largest line.
    let mut shares: Vec<Decimal> = before_header
        .iter()
        .map(|n| {
            if subtotal.is_zero() {
                Decimal::ZERO
            } else {
                // Multiply first for exact cents; amounts near the storable maximum
                // would overflow the product, and divide first instead.
                cents(
                    header
                        .checked_mul(*n)
                        .map_or_else(|| *n / subtotal * header, |p| p / subtotal),
                )
            }
        })
        .collect();
    let remainder = header - shares.iter().copied().sum::<Decimal>();
    if let Some((i, _)) = before_header.iter().enumerate().max_by_key(|(_, n)| **n) {
        shares[i] += remainder;
    }
    let mut out = Vec::with_capacity(lines.len());
    for (i, l) in lines.iter().enumerate() {
        let net = before_header[i] - shares[i];
        let tax = cents(net * l.tax_rate / hundred());
        out.push(LineAmounts {
            list_amount: list[i],
            net_amount: net,
            tax_amount: tax,
            total: net + tax,
        });
    }
    let list_total: Decimal = list.iter().copied().sum();
    let net_amount = subtotal - header;
    let tax_amount: Decimal = out.iter().map(|l| l.tax_amount).sum();
    let cost_total: Decimal = lines.iter().map(|l| cents(l.quantity * l.unit_cost)).sum();
    let discount_amount = list_total - net_amount;
    let effective_discount_pct = if list_total.is_zero() {
        cents(Decimal::ZERO)
    } else {
        cents(discount_amount * hundred() / list_total)
    };
    let totals = QuoteTotals {
        list_total: cents(list_total),
        subtotal: cents(subtotal),
        header_discount_amount: header,
        net_amount: cents(net_amount),
        discount_amount: cents(discount_amount),
        effective_discount_pct,
        tax_amount: cents(tax_amount),
        total: cents(net_amount + tax_amount),
        cost_total: cents(cost_total),
        gross_margin: cents(net_amount - cost_total),
    };
    (out, totals)
}

/// What is still owed on an installment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub installment_id: Uuid,
    pub due_date: NaiveDate,
    pub outstanding: Decimal,
}

/// Why an allocation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocationError {
    #[error("installment {0} is not part of this contract")]
    UnknownInstallment(Uuid),
    #[error("allocation to installment {0} exceeds what is still due")]
    ExceedsDue(Uuid),
    #[error("allocations add up to more than the payment")]
    ExceedsPayment,
    #[error("allocation amounts must be positive")]
    NotPositive,
}

/// Allocates a payment. With explicit allocations they are checked (never more than
/// due, never more than paid); without, the oldest dues are paid first. What is left
/// unallocated is an over-payment and stays on the payment as unapplied.
pub fn allocate(
    amount: Decimal,
    dues: &[Due],
    explicit: Option<&[(Uuid, Decimal)]>,
) -> Result<Vec<(Uuid, Decimal)>, AllocationError> {
    match explicit {
        Some(list) => {
            let mut total = Decimal::ZERO;
            for (id, a) in list {
                if *a <= Decimal::ZERO {
                    return Err(AllocationError::NotPositive);
                }
                let due = dues
                    .iter()
                    .find(|d| d.installment_id == *id)
                    .ok_or(AllocationError::UnknownInstallment(*id))?;
                let already: Decimal = list.iter().filter(|(x, _)| x == id).map(|(_, v)| *v).sum();
                if already > due.outstanding {
                    return Err(AllocationError::ExceedsDue(*id));
                }
                total += *a;
            }
            if total > amount {
                return Err(AllocationError::ExceedsPayment);
            }
            Ok(list.to_vec())
        }
        None => {
            let mut sorted: Vec<&Due> = dues.iter().filter(|d| d.outstanding > Decimal::ZERO).collect();
            sorted.sort_by_key(|d| (d.due_date, d.installment_id));
            let mut left = amount;
            let mut out = Vec::new();
            for d in sorted {
                if left <= Decimal::ZERO {
                    break;
                }
                let a = left.min(d.outstanding);
                out.push((d.installment_id, a));
                left -= a;
            }
            Ok(out)
        }
    }
}

/// Ageing bucket of an overdue amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgeBucket {
    Current,
    Days0To30,
    Days31To60,
    Days61To90,
    Over90,
}

/// Bucket of an installment due on `due` as of `today`.
pub fn age_bucket(due: NaiveDate, today: NaiveDate) -> AgeBucket {
    let days = (today - due).num_days();
    match days {
        d if d <= 0 => AgeBucket::Current,
        1..=30 => AgeBucket::Days0To30,
        31..=60 => AgeBucket::Days31To60,
        61..=90 => AgeBucket::Days61To90,
        _ => AgeBucket::Over90,
    }
}

/// An amount in Chinese capital numerals as printed on quotes and invoices (人民币大写),
/// e.g. 1234.56 -> 壹仟贰佰叁拾肆元伍角陆分, 100000 -> 壹拾万元整.
pub fn rmb_upper(amount: Decimal) -> String {
    const D: [&str; 10] = ["零", "壹", "贰", "叁", "肆", "伍", "陆", "柒", "捌", "玖"];
    const U: [&str; 4] = ["", "拾", "佰", "仟"];
    const G: [&str; 4] = ["", "万", "亿", "万亿"];
    let a = cents(amount.abs());
    let total: i128 = (a * hundred()).trunc().to_i128().unwrap_or(0);
    let (yuan, jiao, fen) = (total / 100, (total / 10 % 10) as usize, (total % 10) as usize);
    let mut s = String::new();
    if amount.is_sign_negative() && !a.is_zero() {
        s.push('负');
    }
    if yuan > 0 {
        let digits: Vec<usize> = yuan.to_string().bytes().map(|b| usize::from(b - b'0')).collect();
        let n = digits.len();
        let mut zero = false;
        for (i, &d) in digits.iter().enumerate() {
            let pos = n - 1 - i;
            if d == 0 {
                zero = true;
            } else {
                if zero {
                    s.push('零');
                    zero = false;
                }
                s.push_str(D[d]);
                s.push_str(U[pos % 4]);
            }
            if pos.is_multiple_of(4) && pos > 0 {
                let start = i.saturating_sub(3);
                if digits[start..=i].iter().any(|d| *d != 0) {
                    s.push_str(G[(pos / 4).min(3)]);
                }
            }
        }
        s.push('元');
    }
    match (jiao, fen) {
        (0, 0) => {
            if yuan == 0 {
                s.push_str("零元");
            }
            s.push('整');
        }
        (j, 0) => {
            s.push_str(D[j]);
            s.push_str("角整");
        }
        (j, f) => {
            if j > 0 {
                s.push_str(D[j]);
                s.push('角');
            } else if yuan > 0 {
                s.push('零');
            }
            s.push_str(D[f]);
            s.push('分');
        }
    }
    s
}

/// How payments are bounded and when a prepayment counts (the `payments` setting).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentRules {
    /// How much the payments on a contract may exceed its amount (held as unapplied
    /// credit); beyond that a payment is refused.
    pub overpayment_tolerance: Decimal,
    /// Whether money may be recorded on a contract that is not signed yet (as a
    /// prepayment, held unapplied until the contract is signed).
    pub accept_prepayments: bool,
    /// Prepayments on one contract reaching this percentage of its amount count as
    /// "payment received" for the Won criteria; `None`: only a signed contract (or a
    /// payment on one) does.
    pub prepayment_wins_pct: Option<Decimal>,
}

impl Default for PaymentRules {
    fn default() -> Self {
        PaymentRules {
            overpayment_tolerance: Decimal::ZERO,
            accept_prepayments: true,
            prepayment_wins_pct: Some(Decimal::from(10)),
        }
    }
}

/// Why a payment is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    #[error("the contract is not signed and prepayments are not accepted")]
    NotSigned,
    #[error("payments on this contract would exceed its amount by more than the tolerance")]
    ExceedsContract {
        /// What may still be received.
        remaining: Decimal,
    },
}

/// Checks a new payment on a contract: whether it is a prepayment (contract not
/// signed), and that the contract's payments stay within its amount plus tolerance.
pub fn check_payment(
    rules: &PaymentRules,
    contract_amount: Decimal,
    received: Decimal,
    amount: Decimal,
    signed: bool,
) -> Result<bool, PaymentError> {
    if !signed && !rules.accept_prepayments {
        return Err(PaymentError::NotSigned);
    }
    let cap = contract_amount + rules.overpayment_tolerance.max(Decimal::ZERO);
    if received + amount > cap {
        return Err(PaymentError::ExceedsContract {
            remaining: cents((cap - received).max(Decimal::ZERO)),
        });
    }
    Ok(!signed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn line(q: &str, list: &str, price: &str, disc: &str, tax: &str, cost: &str) -> LineInput {
        LineInput {
            quantity: d(q),
            unit_list_price: d(list),
            unit_price: d(price),
            discount_pct: d(disc),
            tax_rate: d(tax),
            unit_cost: d(cost),
        }
    }

    #[test]
    fn a_worked_example() {
        let lines = vec![
            line("3", "100.00", "100.00", "10", "13", "40"),
            line("1", "999.99", "900.00", "0", "6", "500"),
        ];
        let (ls, t) = compute_quote(&lines, d("5"));
        assert_eq!(t.list_total, d("1299.99"));
        assert_eq!(t.subtotal, d("1170.00"));
        assert_eq!(t.header_discount_amount, d("58.50"));
        assert_eq!(t.net_amount, d("1111.50"));
        assert_eq!(ls[0].net_amount + ls[1].net_amount, d("1111.50"));
        assert_eq!(ls[0].net_amount, d("256.50"));
        assert_eq!(ls[0].tax_amount, d("33.35"));
        assert_eq!(ls[1].tax_amount, d("51.30"));
        assert_eq!(t.tax_amount, d("84.65"));
        assert_eq!(t.total, d("1196.15"));
        assert_eq!(t.discount_amount, d("188.49"));
        assert_eq!(t.effective_discount_pct, d("14.50"));
        assert_eq!(t.cost_total, d("620.00"));
        assert_eq!(t.gross_margin, d("491.50"));
    }

    #[test]
    fn a_header_discount_near_the_storable_maximum_does_not_overflow() {
        // Eight lines just under 10^16 each and a 100% header discount: spreading the
        // discount multiplies two such amounts (beyond Decimal's 7.9 x 10^28).
        let lines: Vec<LineInput> = (0..8)
            .map(|_| line("1", "9999999999999999.00", "9999999999999999.00", "0", "13", "0"))
            .collect();
        let (ls, t) = compute_quote(&lines, d("100"));
        assert_eq!(t.net_amount, d("0.00"));
        assert!(ls.iter().all(|l| l.net_amount.is_zero()), "{ls:?}");
        let (ls, t) = compute_quote(&lines, d("50"));
        assert_eq!(t.header_discount_amount, d("39999999999999996.00"));
        assert_eq!(ls.iter().map(|l| l.net_amount).sum::<Decimal>(), t.net_amount);
    }

    #[test]
    fn half_cents_round_away_from_zero() {
        assert_eq!(cents(d("0.125")), d("0.13"));
        assert_eq!(cents(d("0.135")), d("0.14"));
        assert_eq!(cents(d("-0.125")), d("-0.13"));
        assert_eq!(cents(d("7")).to_string(), "7.00");
    }

    #[test]
    fn allocation_rules() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let day = |n| NaiveDate::from_ymd_opt(2026, 1, n).unwrap();
        let dues = vec![
            Due {
                installment_id: b,
                due_date: day(20),
                outstanding: d("50"),
            },
            Due {
                installment_id: a,
                due_date: day(10),
                outstanding: d("30"),
            },
        ];
        assert_eq!(
            allocate(d("40"), &dues, None).unwrap(),
            vec![(a, d("30")), (b, d("10"))]
        );
        assert_eq!(
            allocate(d("100"), &dues, None).unwrap(),
            vec![(a, d("30")), (b, d("50"))],
            "over-payment stays unapplied"
        );
        assert_eq!(
            allocate(d("40"), &dues, Some(&[(a, d("31"))])),
            Err(AllocationError::ExceedsDue(a))
        );
        assert_eq!(
            allocate(d("40"), &dues, Some(&[(a, d("30")), (b, d("20"))])),
            Err(AllocationError::ExceedsPayment)
        );
        assert_eq!(
            allocate(d("40"), &dues, Some(&[(Uuid::from_u128(9), d("1"))])),
            Err(AllocationError::UnknownInstallment(Uuid::from_u128(9)))
        );
        assert_eq!(
            allocate(d("40"), &dues, Some(&[(b, d("20")), (b, d("31"))])),
            Err(AllocationError::ExceedsDue(b))
        );
        assert_eq!(age_bucket(day(10), day(10)), AgeBucket::Current);
        assert_eq!(age_bucket(day(1), day(31)), AgeBucket::Days0To30);
        assert_eq!(
            age_bucket(NaiveDate::from_ymd_opt(2025, 10, 1).unwrap(), day(31)),
            AgeBucket::Over90
        );
    }

    fn money() -> impl Strategy<Value = Decimal> {
        (0i64..10_000_000).prop_map(|c| Decimal::new(c, 2))
    }

    fn pct() -> impl Strategy<Value = Decimal> {
        (0i64..=10_000).prop_map(|c| Decimal::new(c, 2))
    }

    prop_compose! {
        fn any_line()(q in 1i64..100_000, list in money(), price in money(), disc in pct(), tax in prop_oneof![Just(0i64), Just(600), Just(900), Just(1300)], cost in money()) -> LineInput {
            LineInput { quantity: Decimal::new(q, 2), unit_list_price: list, unit_price: price, discount_pct: disc, tax_rate: Decimal::new(tax, 2), unit_cost: cost }
        }
    }

    proptest! {
        #[test]
        fn totals_are_sums_of_lines(lines in proptest::collection::vec(any_line(), 1..12), header in pct()) {
            let (ls, t) = compute_quote(&lines, header);
            prop_assert_eq!(t.total, ls.iter().map(|l| l.total).sum::<Decimal>());
            prop_assert_eq!(t.net_amount, ls.iter().map(|l| l.net_amount).sum::<Decimal>());
            prop_assert_eq!(t.tax_amount, ls.iter().map(|l| l.tax_amount).sum::<Decimal>());
            prop_assert_eq!(t.list_total, ls.iter().map(|l| l.list_amount).sum::<Decimal>());
            prop_assert_eq!(t.net_amount, t.subtotal - t.header_discount_amount);
            prop_assert!(t.header_discount_amount >= Decimal::ZERO && t.header_discount_amount <= t.subtotal);
            prop_assert_eq!(t.discount_amount, t.list_total - t.net_amount);
            for l in &ls {
                prop_assert!(l.net_amount >= Decimal::ZERO, "a line never goes negative");
                prop_assert_eq!(l.net_amount.scale(), 2);
            }
            if !t.list_total.is_zero() {
                let exact = t.discount_amount * Decimal::from(100) / t.list_total;
                prop_assert!((t.effective_discount_pct - exact).abs() <= Decimal::new(5, 3));
            }
        }

        #[test]
        fn allocations_never_exceed_amounts(amount in money(), outs in proptest::collection::vec((1u128..20, money(), 1u32..28), 0..8)) {
            let dues: Vec<Due> = outs.iter().enumerate().map(|(i, (_, o, day))| Due {
                installment_id: Uuid::from_u128(i as u128 + 1),
                due_date: NaiveDate::from_ymd_opt(2026, 3, *day).unwrap(),
                outstanding: *o,
            }).collect();
            let alloc = allocate(amount, &dues, None).unwrap();
            let total: Decimal = alloc.iter().map(|(_, a)| *a).sum();
            prop_assert!(total <= amount);
            let owed: Decimal = dues.iter().map(|d| d.outstanding).sum();
            prop_assert_eq!(total, amount.min(owed));
            for (id, a) in &alloc {
                let due = dues.iter().find(|d| d.installment_id == *id).unwrap();
                prop_assert!(*a > Decimal::ZERO && *a <= due.outstanding);
            }
            // The same allocation, given explicitly, is accepted.
            prop_assert!(allocate(amount, &dues, Some(&alloc)).is_ok());
        }
    }

    #[test]
    fn capital_numerals() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        assert_eq!(rmb_upper(d("1234.56")), "壹仟贰佰叁拾肆元伍角陆分");
        assert_eq!(rmb_upper(d("100000")), "壹拾万元整");
        assert_eq!(rmb_upper(d("1005")), "壹仟零伍元整");
        assert_eq!(rmb_upper(d("100005")), "壹拾万零伍元整");
        assert_eq!(rmb_upper(d("10.05")), "壹拾元零伍分");
        assert_eq!(rmb_upper(d("0.50")), "伍角整");
        assert_eq!(rmb_upper(d("0")), "零元整");
        assert_eq!(rmb_upper(d("100000000")), "壹亿元整");
        assert_eq!(rmb_upper(d("120050000.3")), "壹亿贰仟零伍万元叁角整");
        assert_eq!(rmb_upper(d("-8.01")), "负捌元零壹分");
    }

    #[test]
    fn payments_stay_within_the_contract_plus_tolerance() {
        let d = |s: &str| Decimal::from_str_exact(s).unwrap();
        let rules = PaymentRules::default();
        assert_eq!(check_payment(&rules, d("1.13"), d("0"), d("1.13"), true), Ok(false));
        assert_eq!(
            check_payment(&rules, d("1.13"), d("0"), d("1000000.00"), false),
            Err(PaymentError::ExceedsContract { remaining: d("1.13") })
        );
        assert_eq!(check_payment(&rules, d("1000"), d("200"), d("800"), false), Ok(true));
        assert_eq!(
            check_payment(&rules, d("1000"), d("200"), d("900"), true),
            Err(PaymentError::ExceedsContract { remaining: d("800.00") })
        );
        let loose = PaymentRules {
            overpayment_tolerance: d("100"),
            accept_prepayments: false,
            prepayment_wins_pct: None,
        };
        assert_eq!(check_payment(&loose, d("1000"), d("200"), d("900"), true), Ok(false));
        assert_eq!(
            check_payment(&loose, d("1000"), d("0"), d("10"), false),
            Err(PaymentError::NotSigned)
        );
    }
}
