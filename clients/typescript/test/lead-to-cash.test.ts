/**
 * The whole lead-to-cash story against a running demo server (CRM_API_URL, default
 * http://127.0.0.1:8080), written only with the generated types: a rep captures and
 * converts a lead, moves the deal through every stage meeting each entry criterion,
 * quotes above 15% discount, the director approves, legal reviews the contract, it is
 * signed, then the payment plan, the invoice and the payment; the deal is Won and the
 * receivable collected.
 */
import assert from "node:assert/strict";
import { test } from "node:test";

import { createCrmClient, ifMatch, ok, versionOf, type CrmClient, type Schemas } from "../src/client.js";

const BASE = process.env["CRM_API_URL"] ?? "http://127.0.0.1:8080";
const PASSWORD = process.env["CRM_DEMO_PASSWORD"] ?? "demo1234";

async function as(email: string): Promise<CrmClient> {
  const client = createCrmClient({ baseUrl: BASE });
  await client.login(email, PASSWORD);
  return client;
}

type Criterion = Schemas["Criterion"];
type Stage = Schemas["Stage"];

/** Meets one entry criterion of a stage for the deal. */
async function meet(rep: CrmClient, deal: Schemas["Opportunity"], c: Criterion, contactId: string): Promise<void> {
  const id = deal.id;
  switch (c.kind) {
    case "task_done": {
      const stage = (await pipelineStages(rep)).find((s) => s.code === c.stage);
      assert.ok(stage, `stage ${c.stage}`);
      ok(
        await rep.api.PUT("/api/v1/opportunities/{id}/checklist/{stage_id}/{task_code}", {
          params: { path: { id, stage_id: stage.id, task_code: c.task } },
          body: { done: true },
        }),
        `check ${c.task}`,
      );
      return;
    }
    case "output_attached":
      ok(
        await rep.api.POST("/api/v1/opportunities/{id}/outputs", {
          params: { path: { id } },
          body: { output_code: c.output, title: `《${c.output}》`, url: "https://files.example.com/doc.pdf" },
        }),
        `attach ${c.output}`,
      );
      return;
    case "field_required": {
      const current = ok(await rep.api.GET("/api/v1/opportunities/{id}", { params: { path: { id } } }), "deal");
      const body: Schemas["UpdateOpportunity"] = {};
      if (c.field === "amount") body.amount = "226000.00";
      else if (c.field === "expected_close_date") body.expected_close_date = new Date(Date.now() + 30 * 86_400_000).toISOString().slice(0, 10);
      else if (c.field === "primary_contact_id") body.primary_contact_id = contactId;
      else assert.fail(`no value for required field ${c.field}`);
      ok(
        await rep.api.PATCH("/api/v1/opportunities/{id}", {
          params: { path: { id }, header: { "If-Match": ifMatch(current.version) } },
          body,
        }),
        `set ${c.field}`,
      );
      return;
    }
    case "activity_logged":
      ok(
        await rep.api.POST("/api/v1/activities", {
          body: {
            type: c.types?.[0] === "visit" ? "visit" : "call",
            subject: "首次沟通 First call",
            opportunity_id: id,
            content: "Budget and need confirmed",
          },
        }),
        "log activity",
      );
      return;
    default:
      assert.fail(`the story does not meet ${c.kind}`);
  }
}

async function pipelineStages(client: CrmClient): Promise<Stage[]> {
  const pipelines = ok(await client.api.GET("/api/v1/pipelines", {}), "pipelines");
  const p = pipelines.items.find((x) => x.is_default);
  assert.ok(p, "a default pipeline");
  return p.stages;
}

async function inboxItem(client: CrmClient, objectId: string): Promise<Schemas["InboxItem"]> {
  const inbox = ok(await client.api.GET("/api/v1/me/approvals", { params: { query: { status: "pending" } } }), "inbox");
  const item = inbox.items.find((i) => i.object_id === objectId);
  assert.ok(item, `an approval for ${objectId}`);
  return item;
}

test("lead to cash through the typed client", async () => {
  const rep = await as("rep1@demo.local");
  const me = ok(await rep.api.GET("/api/v1/me", {}), "me");
  assert.equal(me.email, "rep1@demo.local");
  const tag = Date.now().toString(36);
  const digits = String(Date.now()).slice(-8);

  // Account and contact.
  const account = ok(
    await rep.api.POST("/api/v1/accounts", {
      body: { name: `TS 客户 ${tag}`, industry: "制造 Manufacturing", type: "prospect", phone: `021-${digits}` },
    }),
    "create account",
  );
  const contact = ok(
    await rep.api.POST("/api/v1/contacts", {
      body: { account_id: account.id, name: `王经理 ${tag}`, decision_role: "decision_maker", email: `wang.${tag}@example.com` },
    }),
    "create contact",
  );

  // A lead, captured and converted into that account with a deal.
  const lead = ok(
    await rep.api.POST("/api/v1/leads", {
      body: { person_name: `王经理 ${tag}`, company: account.name, source: "referral", mobile: `139${digits}` },
    }),
    "create lead",
  );
  const converted = ok(
    await rep.api.POST("/api/v1/leads/{id}/convert", {
      params: { path: { id: lead.id } },
      body: { account: { id: account.id }, contact_id: contact.id, opportunity: { name: `TS 商机 ${tag}` } },
    }),
    "convert lead",
  );
  assert.equal(converted.lead.status, "converted");
  const dealId = converted.opportunity_id;
  assert.ok(dealId, "the conversion opened a deal");

  // Through every open stage, meeting each entry criterion as the pipeline states it.
  const stages = await pipelineStages(rep);
  const open = stages.filter((s) => s.kind === "open").sort((a, b) => a.position - b.position);
  let deal = ok(await rep.api.GET("/api/v1/opportunities/{id}", { params: { path: { id: dealId } } }), "deal");
  for (const criterion of open[0]?.entry_criteria ?? []) {
    await meet(rep, deal, criterion, contact.id);
  }
  for (const stage of open.slice(1)) {
    for (const criterion of stage.entry_criteria) {
      await meet(rep, deal, criterion, contact.id);
    }
    const moved = await rep.api.POST("/api/v1/opportunities/{id}/stage", {
      params: { path: { id: dealId } },
      body: { stage_id: stage.id },
    });
    deal = ok(moved, `enter ${stage.code}`);
    assert.equal(deal.stage_id, stage.id);
  }
  assert.equal(open.at(-1)?.code, "closing");

  // A quote at 20% off needs the director.
  const products = ok(await rep.api.GET("/api/v1/products", { params: { query: { active: true, limit: 50 } } }), "products");
  const product = products.items.find((p) => Number(p.list_price) >= 10_000);
  assert.ok(product, "the demo catalogue has products");
  const quote = ok(
    await rep.api.POST("/api/v1/quotes", {
      body: {
        opportunity_id: dealId,
        lines: [{ product_id: product.id, quantity: "10", discount_pct: "20" }],
        terms: "30% 预付, 70% 验收后 30 天内",
      },
    }),
    "create quote",
  );
  assert.equal(quote.effective_discount_pct, "20.00");
  const submitted = ok(
    await rep.api.POST("/api/v1/quotes/{id}/submit", { params: { path: { id: quote.id } } }),
    "submit quote",
  );
  assert.equal(submitted.status, "pending_approval");
  const director = await as("director@demo.local");
  const item = await inboxItem(director, quote.id);
  const decided = ok(
    await director.api.POST("/api/v1/approvals/{id}/approve", {
      params: { path: { id: item.approval_id } },
      body: { comment: "战略客户 strategic account" },
    }),
    "approve quote",
  );
  assert.equal(decided.status, "approved");
  ok(await rep.api.POST("/api/v1/quotes/{id}/send", { params: { path: { id: quote.id } } }), "send quote");
  const accepted = ok(
    await rep.api.POST("/api/v1/quotes/{id}/accept", { params: { path: { id: quote.id } } }),
    "accept quote",
  );
  assert.equal(accepted.status, "accepted");

  // The contract from the quote, through legal review, signed: the deal is Won.
  const contract = ok(await rep.api.POST("/api/v1/contracts", { body: { quote_id: quote.id } }), "create contract");
  assert.equal(contract.amount, accepted.total);
  const review = ok(
    await rep.api.POST("/api/v1/contracts/{id}/submit", { params: { path: { id: contract.id } } }),
    "submit contract",
  );
  assert.equal(review.status, "legal_review");
  const legal = await as("legal1@demo.local");
  const legalItem = await inboxItem(legal, contract.id);
  ok(
    await legal.api.POST("/api/v1/approvals/{id}/approve", {
      params: { path: { id: legalItem.approval_id } },
      body: { comment: "条款无误" },
    }),
    "legal review",
  );
  const signed = ok(
    await rep.api.POST("/api/v1/contracts/{id}/sign", {
      params: { path: { id: contract.id } },
      body: { signed_copy_ref: `files/${tag}-signed.pdf` },
    }),
    "sign contract",
  );
  assert.equal(signed.status, "signed");
  const won = ok(await rep.api.GET("/api/v1/opportunities/{id}", { params: { path: { id: dealId } } }), "deal");
  assert.equal(won.status, "won");

  // Payment plan, invoice and payment: the receivable is collected.
  const amount = signed.amount;
  const today = new Date().toISOString().slice(0, 10);
  const plan = ok(
    await rep.api.PUT("/api/v1/contracts/{id}/payment-plan", {
      params: { path: { id: contract.id } },
      body: { installments: [{ due_date: today, amount, note: "全款 full amount" }] },
    }),
    "payment plan",
  );
  assert.equal(plan.balanced, true);
  const installment = plan.installments[0];
  assert.ok(installment);
  const finance = await as("finance1@demo.local");
  const invoice = ok(
    await finance.api.POST("/api/v1/invoices", {
      body: { contract_id: contract.id, installment_id: installment.id },
    }),
    "invoice",
  );
  assert.equal(invoice.amount, amount);
  const payment = ok(
    await finance.api.POST("/api/v1/payments", {
      body: { contract_id: contract.id, amount, method: "bank_transfer", reference: `BANK-${tag}` },
    }),
    "payment",
  );
  assert.equal(payment.unapplied, "0.00");
  assert.equal(payment.prepayment, false);
  const receivables = ok(
    await finance.api.GET("/api/v1/receivables", { params: { query: { contract_id: contract.id } } }),
    "receivables",
  );
  assert.equal(receivables.items[0]?.outstanding, "0.00");
  assert.equal(receivables.items[0]?.received, amount);

  // Changes are guarded by the version: a stale If-Match is 412 with a problem body.
  const acc = await rep.api.GET("/api/v1/accounts/{id}", { params: { path: { id: account.id } } });
  const version = versionOf(acc.response);
  assert.ok(version !== undefined);
  const stale = await rep.api.PATCH("/api/v1/accounts/{id}", {
    params: { path: { id: account.id }, header: { "If-Match": ifMatch(version + 10) } },
    body: { notes: "stale" },
  });
  assert.equal(stale.response.status, 412);
  assert.equal(stale.error?.code, "stale_version");
});

test("an expired access token is refreshed once and the request retried", async () => {
  const first = await as("rep2@demo.local");
  const saved = first.session();
  assert.ok(saved);
  const sessions: Array<string | null> = [];
  const restored = createCrmClient({
    baseUrl: BASE,
    session: { accessToken: "expired.or.revoked", refreshToken: saved.refreshToken },
    onSession: (s) => sessions.push(s === null ? null : s.refreshToken),
  });
  const me = ok(await restored.api.GET("/api/v1/me", {}), "me after refresh");
  assert.equal(me.email, "rep2@demo.local");
  assert.equal(sessions.length, 1);
  assert.notEqual(sessions[0], saved.refreshToken, "the refresh token rotated");
  // A POST is retried with the same Idempotency-Key: one record, not two.
  const again = createCrmClient({
    baseUrl: BASE,
    session: { accessToken: "expired.or.revoked", refreshToken: restored.session()?.refreshToken ?? "" },
  });
  const name = `Retry 客户 ${Date.now().toString(36)}`;
  const created = await again.api.POST("/api/v1/accounts", { body: { name } });
  assert.equal(created.response.status, 201);
  const found = ok(await again.api.GET("/api/v1/accounts", { params: { query: { q: name } } }), "search");
  assert.equal(found.items.length, 1);
});
