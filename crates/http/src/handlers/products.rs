//! `/api/v1/products` and `/api/v1/price-books`: the catalogue everyone quotes from;
//! changed by holders of `products:admin`.

use actix_web::{get, patch, post, web, HttpRequest, HttpResponse};
use crm_db::repo::products::{self, NewPriceBook, NewProduct, PriceBookChanges, ProductChanges, ProductFilter};
use crm_db::repo::{audit, missing_ids};
use crm_db::sql::ListSpec;
use crm_domain::access::Action;
use crm_domain::diff;
use diesel::prelude::*;
use rust_decimal::Decimal;
use serde_json::json;
use uuid::Uuid;

use super::{
    with_etag, BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, PreconditionFailed, PreconditionRequired,
    Unauthorized, Unprocessable, UnsupportedMediaType,
};
use crate::auth::Auth;
use crate::dto::check_amount;
use crate::dto::products::{
    CreatePriceBook, CreateProduct, PriceBook, PriceBookEntry, PriceBookList, PriceInput, Product, ProductListQuery,
    UpdatePriceBook, UpdateProduct,
};
use crate::dto::{check_pct, money, Errors, Page};
use crate::error::{ApiError, ApiResult};
use crate::extract::{IdempotencyKey, RequiredIfMatch, ValidJson};
use crate::idempotency::{self, Outcome};
use crate::state::AppState;

const RES: &str = "products";

/// A product as the caller may read it (standard cost follows field permissions).
fn shaped(auth: &Auth, p: &Product) -> serde_json::Value {
    crate::custom::shaped(&auth.principal, RES, &[], p)
}

fn check_code(errs: &mut Errors, code: &str) -> String {
    let c = code.trim().to_owned();
    let ok = c.len() <= 50
        && c.chars().next().is_some_and(|ch| ch.is_ascii_alphanumeric())
        && c.chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '.' | '-'));
    if !ok {
        errs.add(
            "code",
            "invalid_format",
            "letters, digits, `_`, `.` and `-`, starting with a letter or digit",
        );
    }
    c
}

fn check_tier(errs: &mut Errors, tier: Option<String>) -> Option<String> {
    let t = tier.map(|t| t.trim().to_ascii_uppercase()).filter(|t| !t.is_empty())?;
    if !matches!(t.as_str(), "A" | "B" | "C" | "D") {
        errs.add("tier", "invalid_choice", "one of A, B, C, D");
    }
    Some(t)
}

fn check_prices(errs: &mut Errors, field: &str, list: &[PriceInput]) -> Vec<(Uuid, Decimal)> {
    let mut out: Vec<(Uuid, Decimal)> = Vec::new();
    for (i, p) in list.iter().enumerate() {
        let v = check_amount(errs, &format!("{field}[{i}].unit_price"), Some(p.unit_price)).unwrap_or_default();
        if out.iter().any(|(id, _)| *id == p.product_id) {
            errs.add(&format!("{field}[{i}].product_id"), "duplicate", "listed twice");
        }
        out.push((p.product_id, v));
    }
    out
}

fn code_conflict(existing: Uuid) -> ApiError {
    ApiError::conflict("duplicate", "another product has this code").with_extra("existing", json!({"id": existing}))
}

/// List products (everyone with `products:read`).
#[utoipa::path(
    tag = "products",
    params(ProductListQuery),
    responses((status = 200, description = "A page of products", body = Page<Product>), BadRequest, Unauthorized, Forbidden),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[get("/products")]
pub async fn list_products(
    state: web::Data<AppState>,
    auth: Auth,
    q: web::Query<ProductListQuery>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Read)?;
    let q = q.into_inner();
    let filter = ProductFilter {
        q: q.q,
        category: q.category,
        active: q.active,
    };
    let page = state
        .db
        .run(move |c| {
            let spec = ListSpec::new(
                products::SORT_COLUMNS,
                "code",
                q.sort.as_deref(),
                q.cursor.as_deref(),
                q.limit,
                "list",
            )?;
            Ok::<_, ApiError>(products::list(c, &filter, &spec)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Page {
        items: page
            .items
            .into_iter()
            .map(|r| shaped(&auth, &Product::from(r)))
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Get one product.
#[utoipa::path(
    tag = "products",
    params(("id" = Uuid, Path, description = "Product id")),
    responses((status = 200, description = "The product", body = Product, headers(("ETag" = String))), BadRequest, Unauthorized, Forbidden, NotFound),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[get("/products/{id}")]
pub async fn get_product(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Read)?;
    let id = id.into_inner();
    let row = state
        .db
        .run(move |c| products::find(c, id, false)?.ok_or_else(|| ApiError::not_found("product")))
        .await?;
    let v = row.version;
    Ok(with_etag(&shaped(&auth, &Product::from(row)), v))
}

/// Create a product (`products:admin`).
#[utoipa::path(
    tag = "products",
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = CreateProduct,
    responses(
        (status = 201, description = "Created", body = Product, headers(("Location" = String), ("ETag" = String))),
        BadRequest, Unauthorized, Forbidden, Conflict, PayloadTooLarge, UnsupportedMediaType, Unprocessable
    ),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[post("/products")]
pub async fn create_product(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    body: ValidJson<CreateProduct>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let dto = body.value?;
    let mut errs = Errors::default();
    let new = NewProduct {
        id: Uuid::now_v7(),
        code: check_code(&mut errs, &dto.code),
        name: errs.required_text("name", &dto.name),
        unit: errs.line(dto.unit).unwrap_or_else(|| "件".into()),
        category: errs.line(dto.category),
        list_price: check_amount(&mut errs, "list_price", Some(dto.list_price)).unwrap_or_default(),
        standard_cost: check_amount(&mut errs, "standard_cost", dto.standard_cost).unwrap_or_default(),
        tax_rate: check_pct(&mut errs, "tax_rate", dto.tax_rate).unwrap_or(Decimal::from(13)),
        active: dto.active.unwrap_or(true),
    };
    errs.into_result()?;
    let writer = auth.clone();
    idempotency::post(&state, &auth, key, &req, &body.raw, idempotency::keep, move |c| {
        if let Some(existing) = products::code_taken(c, &new.code, None)? {
            return Err(code_conflict(existing));
        }
        let row = products::insert(c, &new)?;
        let dto = Product::from(row);
        let data = serde_json::to_value(&dto).unwrap_or_default();
        audit::record(c, &writer.actor(), RES, dto.id, "created", diff::created(&data), data)?;
        Outcome::created(&shaped(&writer, &dto), format!("/api/v1/products/{}", dto.id))
    })
    .await
}

/// Update a product (`products:admin`, `If-Match` required). Existing quotes keep the
/// prices they were written with.
#[utoipa::path(
    tag = "products",
    params(("id" = Uuid, Path, description = "Product id"), ("If-Match" = String, Header, description = "ETag")),
    request_body = UpdateProduct,
    responses(
        (status = 200, description = "Updated", body = Product, headers(("ETag" = String))),
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PreconditionFailed, PayloadTooLarge,
        UnsupportedMediaType, Unprocessable, PreconditionRequired
    ),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[patch("/products/{id}")]
pub async fn update_product(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    if_match: RequiredIfMatch,
    body: ValidJson<UpdateProduct>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let id = id.into_inner();
    let dto = body.value?;
    let mut errs = Errors::default();
    let ch = ProductChanges {
        code: dto.code.as_deref().map(|c| check_code(&mut errs, c)),
        name: dto.name.as_deref().map(|n| errs.required_text("name", n)),
        unit: dto.unit.as_deref().map(|u| errs.required_text("unit", u)),
        category: dto.category.map(|c| errs.line(c)),
        list_price: dto
            .list_price
            .and_then(|v| check_amount(&mut errs, "list_price", Some(v))),
        standard_cost: dto
            .standard_cost
            .and_then(|v| check_amount(&mut errs, "standard_cost", Some(v))),
        tax_rate: dto.tax_rate.and_then(|v| check_pct(&mut errs, "tax_rate", Some(v))),
        active: dto.active,
    };
    errs.into_result()?;
    let writer = auth.clone();
    let row = state
        .db
        .run(move |c| {
            c.transaction(|c| {
                let before = products::find(c, id, true)?.ok_or_else(|| ApiError::not_found("product"))?;
                if_match.0.check(before.version)?;
                if let Some(code) = &ch.code {
                    if let Some(existing) = products::code_taken(c, code, Some(id))? {
                        return Err(code_conflict(existing));
                    }
                }
                let after = products::update(c, id, &ch)?;
                let (b, a) = (
                    serde_json::to_value(Product::from(before)).unwrap_or_default(),
                    serde_json::to_value(Product::from(after.clone())).unwrap_or_default(),
                );
                let changes = diff::changes(&b, &a);
                if !changes.is_empty() {
                    audit::record(c, &writer.actor(), RES, id, "updated", changes, a)?;
                }
                Ok::<_, ApiError>(after)
            })
        })
        .await?;
    let v = row.version;
    Ok(with_etag(&shaped(&auth, &Product::from(row)), v))
}

fn load_book(c: &mut PgConnection, id: Uuid) -> ApiResult<PriceBook> {
    let row = products::find_book(c, id, false)?.ok_or_else(|| ApiError::not_found("price book"))?;
    let entries = products::entries(c, id)?
        .into_iter()
        .map(|(product_id, code, name, price)| PriceBookEntry {
            product_id,
            product_code: code,
            product_name: name,
            unit_price: money(price),
        })
        .collect();
    Ok(PriceBook::from_row(row, entries))
}

fn check_products_exist(c: &mut PgConnection, field: &str, ids: &[Uuid]) -> ApiResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    if let Some(missing) = missing_ids(c, "products", ids)?.first() {
        let i = ids.iter().position(|x| x == missing).unwrap_or(0);
        return Err(ApiError::field(
            &format!("{field}[{i}].product_id"),
            "not_found",
            "no such product",
        ));
    }
    Ok(())
}

/// List price books with their prices.
#[utoipa::path(
    tag = "products",
    responses((status = 200, description = "Price books", body = PriceBookList), Unauthorized, Forbidden),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[get("/price-books")]
pub async fn list_price_books(state: web::Data<AppState>, auth: Auth) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Read)?;
    let items = state
        .db
        .run(move |c| {
            let ids: Vec<Uuid> = products::list_books(c)?.into_iter().map(|b| b.id).collect();
            ids.into_iter()
                .map(|id| load_book(c, id))
                .collect::<ApiResult<Vec<_>>>()
        })
        .await?;
    Ok(HttpResponse::Ok().json(PriceBookList { items }))
}

/// Get one price book with its prices.
#[utoipa::path(
    tag = "products",
    params(("id" = Uuid, Path, description = "Price book id")),
    responses((status = 200, description = "The price book", body = PriceBook, headers(("ETag" = String))), BadRequest, Unauthorized, Forbidden, NotFound),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[get("/price-books/{id}")]
pub async fn get_price_book(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Read)?;
    let id = id.into_inner();
    let book = state.db.run(move |c| load_book(c, id)).await?;
    let v = book.version;
    Ok(with_etag(&book, v))
}

/// Create a price book (`products:admin`). A new default book replaces the currency's
/// previous default.
#[utoipa::path(
    tag = "products",
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    request_body = CreatePriceBook,
    responses(
        (status = 201, description = "Created", body = PriceBook, headers(("Location" = String), ("ETag" = String))),
        BadRequest, Unauthorized, Forbidden, PayloadTooLarge, UnsupportedMediaType, Unprocessable
    ),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[post("/price-books")]
pub async fn create_price_book(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
    key: IdempotencyKey,
    body: ValidJson<CreatePriceBook>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let dto = body.value?;
    let mut errs = Errors::default();
    let currency = dto.currency.as_deref().unwrap_or("CNY").trim().to_ascii_uppercase();
    if crm_domain::normalize::currency(&currency).is_none() {
        errs.add(
            "currency",
            "invalid_format",
            "an active ISO 4217 currency code such as CNY or USD",
        );
    }
    let new = NewPriceBook {
        id: Uuid::now_v7(),
        name: errs.required_text("name", &dto.name),
        currency,
        tier: check_tier(&mut errs, dto.tier),
        is_default: dto.is_default,
        active: true,
    };
    let prices = check_prices(&mut errs, "entries", &dto.entries);
    errs.into_result()?;
    let writer = auth.clone();
    idempotency::post(&state, &auth, key, &req, &body.raw, idempotency::keep, move |c| {
        let ids: Vec<Uuid> = prices.iter().map(|(p, _)| *p).collect();
        check_products_exist(c, "entries", &ids)?;
        if new.is_default {
            products::clear_default(c, &new.currency, new.id)?;
        }
        products::insert_book(c, &new)?;
        products::set_prices(c, new.id, &prices, &[])?;
        let book = load_book(c, new.id)?;
        let data = serde_json::to_value(&book).unwrap_or_default();
        audit::record(
            c,
            &writer.actor(),
            "price_books",
            book.id,
            "created",
            diff::created(&data),
            data,
        )?;
        // The currency's previous default book, if this one took the flag.
        audit::record_pending(c, &writer.actor(), "price_books", "updated")?;
        Outcome::created(&book, format!("/api/v1/price-books/{}", book.id))
    })
    .await
}

/// Change a price book (`products:admin`, `If-Match` required): header, prices to set,
/// prices to remove.
#[utoipa::path(
    tag = "products",
    params(("id" = Uuid, Path, description = "Price book id"), ("If-Match" = String, Header, description = "ETag")),
    request_body = UpdatePriceBook,
    responses(
        (status = 200, description = "Updated", body = PriceBook, headers(("ETag" = String))),
        BadRequest, Unauthorized, Forbidden, NotFound, PreconditionFailed, PayloadTooLarge,
        UnsupportedMediaType, Unprocessable, PreconditionRequired
    ),
    security(("bearer_auth" = []), ("api_key" = []))
)]
#[patch("/price-books/{id}")]
pub async fn update_price_book(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    if_match: RequiredIfMatch,
    body: ValidJson<UpdatePriceBook>,
) -> ApiResult<HttpResponse> {
    auth.require(RES, Action::Admin)?;
    let id = id.into_inner();
    let dto = body.value?;
    let mut errs = Errors::default();
    if dto.is_default == Some(false) {
        errs.add("is_default", "invalid", "make another book the default instead");
    }
    let ch = PriceBookChanges {
        name: dto.name.as_deref().map(|n| errs.required_text("name", n)),
        tier: dto.tier.map(|t| check_tier(&mut errs, t)),
        is_default: dto.is_default,
        active: dto.active,
    };
    let prices = check_prices(&mut errs, "set_prices", &dto.set_prices);
    let remove = dto.remove_products;
    errs.into_result()?;
    let writer = auth.clone();
    let book = state
        .db
        .run(move |c| {
            c.transaction(|c| {
                let row = products::find_book(c, id, true)?.ok_or_else(|| ApiError::not_found("price book"))?;
                if_match.0.check(row.version)?;
                if ch.is_default == Some(true) && ch.active == Some(false) {
                    return Err(ApiError::field("active", "invalid", "the default book must be active"));
                }
                if row.is_default && ch.active == Some(false) {
                    return Err(ApiError::field(
                        "active",
                        "invalid",
                        "make another book the default first",
                    ));
                }
                let ids: Vec<Uuid> = prices.iter().map(|(p, _)| *p).collect();
                check_products_exist(c, "set_prices", &ids)?;
                let before = load_book(c, id)?;
                if ch.is_default == Some(true) {
                    products::clear_default(c, &row.currency, id)?;
                }
                products::update_book(c, id, &ch)?;
                products::set_prices(c, id, &prices, &remove)?;
                let after = load_book(c, id)?;
                let (b, a) = (
                    serde_json::to_value(&before).unwrap_or_default(),
                    serde_json::to_value(&after).unwrap_or_default(),
                );
                audit::record(
                    c,
                    &writer.actor(),
                    "price_books",
                    id,
                    "updated",
                    diff::changes(&b, &a),
                    a,
                )?;
                audit::record_pending(c, &writer.actor(), "price_books", "updated")?;
                Ok::<_, ApiError>(after)
            })
        })
        .await?;
    let v = book.version;
    Ok(with_etag(&book, v))
}
