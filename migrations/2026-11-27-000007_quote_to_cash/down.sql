UPDATE stages SET entry_criteria = '[{"kind":"task_done","stage":"closing","task":"contract_signed"},
       {"kind":"output_attached","output":"signed_contract"}]'::jsonb
WHERE kind = 'won' AND entry_criteria @> '[{"kind": "any_of"}]'::jsonb
  AND entry_criteria -> 0 -> 'criteria' @> '[{"kind": "contract_signed"}]'::jsonb;
DELETE FROM role_permissions WHERE resource IN ('products', 'quotes', 'contracts', 'payments', 'approvals', 'settings');
DROP TABLE payment_allocations;
DROP TABLE payments;
DROP TABLE invoices;
DROP TABLE installments;
DROP TABLE contract_amendments;
DROP TABLE contracts;
DROP TABLE number_sequences;
DROP TABLE settings;
DROP TABLE approval_history;
DROP TABLE approval_tasks;
DROP TABLE approval_instances;
DROP TABLE approval_definitions;
DROP TABLE status_transitions;
DROP TABLE quote_lines;
DROP TABLE quotes;
DROP TABLE price_book_entries;
DROP TABLE price_books;
DROP TABLE products;
