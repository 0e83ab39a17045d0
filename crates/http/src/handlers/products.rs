//! `/api/v1/products` and `/api/v1/price-books`: the catalogue everyone quotes from;
//! changed by holders of `products:admin`.

use actix_web::{get, patch, post, web, HttpRequest, HttpResponse};
use crm_db::repo::products::{self, ProductFilter};
use crm_db::sql::ListSpec;
use crm_domain::access::Action;
use diesel::prelude::*;
use uuid::Uuid;

use super::{
    changed_record, created_record, with_etag, BadRequest, BodyErrors, Conflict, Forbidden, ReadErrors, Unauthorized,
    VersionErrors,
};
use crate::auth::Auth;
use crate::dto::products::{
    CreatePriceBook, CreateProduct, PriceBook, PriceBookEntry, PriceBookList, Product, ProductListQuery,
    UpdatePriceBook, UpdateProduct,
};
use crate::dto::{money, Page};
use crate::error::{ApiError, ApiResult};
use crate::extract::{IdempotencyKey, RequiredIfMatch, ValidJson};
use crate::state::AppState;

const RES: &str = "products";

/// A product as the caller may read it (standard cost follows field permissions).
fn shaped(auth: &Auth, p: &Product) -> serde_json::Value {
    crate::custom::shaped(&auth.principal, RES, &[], p)
}

/// List products (everyone with `products:read`).
#[utoipa::path(
    tag = "products",
    params(ProductListQuery),
    responses((status = 200, description = "A page of products", body = Page<Product>), BadRequest, Unauthorized, Forbidden)
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
            let spec = ListSpec::list(
                products::SORT_COLUMNS,
                "code",
                q.sort.as_deref(),
                q.cursor.as_deref(),
                q.limit,
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
    responses((status = 200, description = "The product", body = Product, headers(("ETag" = String))), ReadErrors)
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
        BadRequest, Unauthorized, Forbidden, Conflict, BodyErrors
    )
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
    let raw = body.raw.clone();
    let fields = body.fields()?;
    created_record(&state, &auth, (key, &req, &raw), (RES, "products"), move |c, ctx| {
        Ok(Product::from(crm_app::products::create(c, ctx, &fields)?))
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
        ReadErrors, Conflict, VersionErrors, BodyErrors
    )
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
    let (id, expected, fields) = (id.into_inner(), if_match.0.expected(), body.fields()?);
    changed_record(&state, &auth, RES, move |c, ctx| {
        Ok(Product::from(crm_app::products::update(c, ctx, id, expected, &fields)?))
    })
    .await
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

/// List price books with their prices.
#[utoipa::path(
    tag = "products",
    responses((status = 200, description = "Price books", body = PriceBookList), Unauthorized, Forbidden)
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
    responses((status = 200, description = "The price book", body = PriceBook, headers(("ETag" = String))), ReadErrors)
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
        BadRequest, Unauthorized, Forbidden, BodyErrors
    )
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
    let raw = body.raw.clone();
    let fields = body.fields()?;
    created_record(
        &state,
        &auth,
        (key, &req, &raw),
        ("price_books", "price-books"),
        move |c, ctx| {
            let row = crm_app::products::create_book(c, ctx, &fields)?;
            load_book(c, row.id)
        },
    )
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
        ReadErrors, VersionErrors, BodyErrors
    )
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
    let (id, expected, fields) = (id.into_inner(), if_match.0.expected(), body.fields()?);
    changed_record(&state, &auth, "price_books", move |c, ctx| {
        let row = crm_app::products::update_book(c, ctx, id, expected, &fields)?;
        load_book(c, row.id)
    })
    .await
}
