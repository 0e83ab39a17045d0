//! Status machines of quotes, contracts, invoices, approval requests and tasks: the
//! statuses, the actions that move between them, and one typed error for a move that
//! does not apply. Leads have theirs in [`crate::pipeline::LeadStatus`].

use serde::{Deserialize, Serialize};

/// An action that does not apply to a record in its current status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action} a {kind} that is {status}; it must be {allowed}")]
pub struct InvalidTransition {
    pub kind: &'static str,
    pub status: &'static str,
    pub action: &'static str,
    pub allowed: String,
}

macro_rules! machine {
    (
        $(#[$doc:meta])* $name:ident ($kind:literal) { $($variant:ident => $text:literal),+ $(,)? }
        actions $action:ident { $($act:ident => $act_text:literal: [$($from:ident),+] -> $to:ident),+ $(,)? }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        /// What can be done to the record.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $action { $($act),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }

            /// The status `action` leads to from here, or why it does not apply.
            pub fn apply(self, action: $action) -> Result<$name, InvalidTransition> {
                let (from, to): (&[$name], $name) = match action {
                    $($action::$act => (&[$($name::$from),+], $name::$to)),+
                };
                if from.contains(&self) {
                    Ok(to)
                } else {
                    Err(InvalidTransition {
                        kind: $kind,
                        status: self.as_str(),
                        action: action.as_str(),
                        allowed: from.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" or "),
                    })
                }
            }
        }

        impl $action {
            pub fn as_str(self) -> &'static str {
                match self { $($action::$act => $act_text),+ }
            }
        }
    };
}

machine! {
    /// Quote status: draft -> pending_approval -> approved | rejected -> sent ->
    /// accepted | declined | expired.
    QuoteStatus ("quote") {
        Draft => "draft", PendingApproval => "pending_approval", Approved => "approved",
        Rejected => "rejected", Sent => "sent", Accepted => "accepted", Declined => "declined",
        Expired => "expired"
    }
    actions QuoteAction {
        Submit => "submit": [Draft, Rejected] -> PendingApproval,
        Approve => "approve": [PendingApproval] -> Approved,
        Reject => "reject": [PendingApproval] -> Rejected,
        Withdraw => "withdraw": [PendingApproval] -> Draft,
        Send => "send": [Approved] -> Sent,
        Accept => "accept": [Sent] -> Accepted,
        Decline => "decline": [Sent] -> Declined,
        Expire => "expire": [Sent] -> Expired,
        Edit => "change": [Draft, Rejected] -> Draft,
    }
}

impl QuoteStatus {
    /// Whether the quote's content may still change (otherwise revise it).
    pub fn editable(self) -> bool {
        self.apply(QuoteAction::Edit).is_ok()
    }
}

machine! {
    /// Contract status: draft -> legal_review -> pending_signature -> signed -> active ->
    /// completed, or terminated on the way.
    ContractStatus ("contract") {
        Draft => "draft", LegalReview => "legal_review", PendingSignature => "pending_signature",
        Signed => "signed", Active => "active", Completed => "completed", Terminated => "terminated"
    }
    actions ContractAction {
        Submit => "submit": [Draft] -> LegalReview,
        Approve => "approve": [LegalReview] -> PendingSignature,
        Reject => "reject": [LegalReview] -> Draft,
        Withdraw => "withdraw": [LegalReview] -> Draft,
        Sign => "sign": [PendingSignature] -> Signed,
        Activate => "activate": [Signed] -> Active,
        Complete => "complete": [Active] -> Completed,
        Terminate => "terminate": [Draft, LegalReview, PendingSignature, Signed, Active] -> Terminated,
        Amend => "amend": [Signed, Active] -> Signed,
    }
}

impl ContractStatus {
    /// Signed by both sides (signed, active or completed): it binds, it can be invoiced
    /// and paid, and it wins its deal.
    pub fn is_signed(self) -> bool {
        matches!(
            self,
            ContractStatus::Signed | ContractStatus::Active | ContractStatus::Completed
        )
    }

    /// Nothing more happens to it (completed or terminated).
    pub fn is_final(self) -> bool {
        matches!(self, ContractStatus::Completed | ContractStatus::Terminated)
    }
}

machine! {
    /// Invoice status.
    InvoiceStatus ("invoice") { Issued => "issued", Void => "void" }
    actions InvoiceAction { Void => "void": [Issued] -> Void }
}

machine! {
    /// Status of an approval request.
    ApprovalStatus ("approval") {
        Pending => "pending", Approved => "approved", AutoApproved => "auto_approved",
        Rejected => "rejected", Withdrawn => "withdrawn"
    }
    actions ApprovalAction {
        Approve => "approve": [Pending] -> Approved,
        Reject => "reject": [Pending] -> Rejected,
        Withdraw => "withdraw": [Pending] -> Withdrawn,
    }
}

machine! {
    /// Status of a task.
    TaskStatus ("task") { Open => "open", Done => "done", Cancelled => "cancelled" }
    actions TaskAction {
        Complete => "complete": [Open] -> Done,
        Cancel => "cancel": [Open] -> Cancelled,
        Reopen => "reopen": [Done, Cancelled] -> Open,
    }
}

/// Where a lead stands against its response SLA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlaStanding {
    /// Answered by the due time.
    Met,
    /// Answered late, or unanswered past the due time.
    Breached,
    /// Unanswered, not yet due.
    Pending,
}

impl SlaStanding {
    /// The standing of a lead due at `due` and answered at `answered`, seen at `now`.
    pub fn of(
        due: Option<chrono::DateTime<chrono::Utc>>,
        answered: Option<chrono::DateTime<chrono::Utc>>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<SlaStanding> {
        let due = due?;
        Some(match answered {
            Some(a) if a <= due => SlaStanding::Met,
            Some(_) => SlaStanding::Breached,
            None if now > due => SlaStanding::Breached,
            None => SlaStanding::Pending,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SlaStanding::Met => "met",
            SlaStanding::Breached => "breached",
            SlaStanding::Pending => "pending",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sla_standing_follows_the_due_time_and_the_answer() {
        let at = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .with_timezone(&chrono::Utc)
        };
        let due = Some(at("2026-12-01T10:00:00Z"));
        let (early, late) = (at("2026-12-01T09:00:00Z"), at("2026-12-01T11:00:00Z"));
        assert_eq!(SlaStanding::of(due, Some(early), late), Some(SlaStanding::Met));
        assert_eq!(SlaStanding::of(due, due, late), Some(SlaStanding::Met));
        assert_eq!(SlaStanding::of(due, Some(late), late), Some(SlaStanding::Breached));
        assert_eq!(SlaStanding::of(due, None, late), Some(SlaStanding::Breached));
        assert_eq!(SlaStanding::of(due, None, early), Some(SlaStanding::Pending));
        assert_eq!(SlaStanding::of(None, None, early), None);
    }

    #[test]
    fn quotes_move_only_along_their_machine() {
        use QuoteAction::*;
        use QuoteStatus::*;
        assert_eq!(Draft.apply(Submit), Ok(PendingApproval));
        assert_eq!(Rejected.apply(Submit), Ok(PendingApproval));
        assert_eq!(PendingApproval.apply(Withdraw), Ok(Draft));
        assert_eq!(Approved.apply(Send), Ok(Sent));
        assert_eq!(Sent.apply(Accept), Ok(Accepted));
        let err = Approved.apply(Accept).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot accept a quote that is approved; it must be sent"
        );
        assert!(Draft.editable() && Rejected.editable() && !Sent.editable() && !PendingApproval.editable());
        for s in QuoteStatus::ALL {
            assert_eq!(QuoteStatus::parse(s.as_str()), Some(*s));
        }
        // Terminal statuses accept nothing.
        for a in [Submit, Approve, Reject, Withdraw, Send, Accept, Decline, Expire, Edit] {
            assert!(Accepted.apply(a).is_err() && Expired.apply(a).is_err() && Declined.apply(a).is_err());
        }
    }

    #[test]
    fn contracts_sign_before_they_bind() {
        use ContractAction::*;
        use ContractStatus::*;
        assert_eq!(Draft.apply(Submit), Ok(LegalReview));
        assert_eq!(LegalReview.apply(Approve), Ok(PendingSignature));
        assert_eq!(PendingSignature.apply(Sign), Ok(Signed));
        assert_eq!(Signed.apply(Activate), Ok(Active));
        assert_eq!(Active.apply(Complete), Ok(Completed));
        assert!(Draft.apply(Sign).is_err());
        assert!(Completed.apply(Terminate).is_err() && Terminated.apply(Terminate).is_err());
        assert_eq!(
            Completed.apply(Terminate).unwrap_err().allowed,
            "draft or legal_review or pending_signature or signed or active"
        );
        assert!(Signed.is_signed() && Completed.is_signed() && !PendingSignature.is_signed());
        assert!(Completed.is_final() && Terminated.is_final() && !Active.is_final());
        assert!(Signed.apply(Complete).is_err());
    }

    #[test]
    fn invoices_approvals_and_tasks() {
        assert_eq!(
            InvoiceStatus::Issued.apply(InvoiceAction::Void),
            Ok(InvoiceStatus::Void)
        );
        assert!(InvoiceStatus::Void.apply(InvoiceAction::Void).is_err());
        assert!(ApprovalStatus::AutoApproved.apply(ApprovalAction::Withdraw).is_err());
        assert_eq!(TaskStatus::Done.apply(TaskAction::Reopen), Ok(TaskStatus::Open));
        assert!(TaskStatus::Open.apply(TaskAction::Reopen).is_err());
    }
}
