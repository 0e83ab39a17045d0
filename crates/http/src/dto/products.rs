//! Product and price-book bodies.

use chrono::{DateTime, Utc};
use crm_db::repo::products::{PriceBookRow, ProductRow};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

use super::{double_option, money};

/// A product or service that can be quoted.
#[derive(Debug, Serialize, ToSchema)]
pub struct Product {
    pub id: Uuid,
    /// Unique (case-insensitive) product code.
    pub code: String,
    pub name: String,
    /// Unit of sale, e.g. 套, 年, 件.
    pub unit: String,
    pub category: Option<String>,
    /// List price in the default currency (CNY).
    #[schema(value_type = String, example = "9800.00")]
    pub list_price: Decimal,
    /// Standard cost, for gross margin.
    #[schema(value_type = String, example = "4200.00")]
    pub standard_cost: Decimal,
    /// VAT rate in percent, e.g. "13.00".
    #[schema(value_type = String, example = "13.00")]
    pub tax_rate: Decimal,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

impl From<ProductRow> for Product {
    fn from(r: ProductRow) -> Self {
        Product {
            id: r.id,
            code: r.code,
            name: r.name,
            unit: r.unit,
            category: r.category,
            list_price: money(r.list_price),
            standard_cost: money(r.standard_cost),
            tax_rate: money(r.tax_rate),
            active: r.active,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
        }
    }
}

/// Body of `POST /products`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProduct {
    #[validate(length(min = 1, max = 50))]
    #[schema(min_length = 1, max_length = 50)]
    pub code: String,
    #[validate(length(max = 200))]
    #[schema(max_length = 200)]
    pub name: String,
    /// Default 件.
    #[validate(length(max = 20))]
    #[schema(max_length = 20)]
    pub unit: Option<String>,
    #[validate(length(max = 100))]
    #[schema(max_length = 100)]
    pub category: Option<String>,
    #[schema(value_type = String, example = "9800.00")]
    #[serde(deserialize_with = "super::decimal_str::required")]
    pub list_price: Decimal,
    #[schema(value_type = Option<String>, example = "4200.00")]
    #[serde(default, deserialize_with = "super::decimal_str::optional")]
    pub standard_cost: Option<Decimal>,
    /// Percent; default "13.00".
    #[schema(value_type = Option<String>, example = "13.00")]
    #[serde(default, deserialize_with = "super::decimal_str::optional")]
    pub tax_rate: Option<Decimal>,
    pub active: Option<bool>,
}

/// Body of `PATCH /products/{id}`.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProduct {
    #[validate(length(min = 1, max = 50))]
    #[schema(min_length = 1, max_length = 50)]
    pub code: Option<String>,
    #[validate(length(max = 200))]
    #[schema(max_length = 200)]
    pub name: Option<String>,
    #[validate(length(max = 20))]
    #[schema(max_length = 20)]
    pub unit: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 100)]
    #[validate(length(max = 100))]
    pub category: Option<Option<String>>,
    #[schema(value_type = Option<String>)]
    #[serde(default, deserialize_with = "super::decimal_str::optional")]
    pub list_price: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    #[serde(default, deserialize_with = "super::decimal_str::optional")]
    pub standard_cost: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    #[serde(default, deserialize_with = "super::decimal_str::optional")]
    pub tax_rate: Option<Decimal>,
    pub active: Option<bool>,
}

/// Query of `GET /products`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProductListQuery {
    /// Page size, 1..=200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    /// `code`, `name`, `list_price`, `created_at`, `updated_at`; `-` for descending. Default `code`.
    pub sort: Option<String>,
    /// Search in code and name.
    pub q: Option<String>,
    pub category: Option<String>,
    pub active: Option<bool>,
}

/// A price list for a currency, optionally for a customer tier.
#[derive(Debug, Serialize, ToSchema)]
pub struct PriceBook {
    pub id: Uuid,
    pub name: String,
    pub currency: String,
    /// Customer tier (A-D) the book is for; quotes for accounts of that tier use it.
    pub tier: Option<String>,
    /// The currency's default book.
    pub is_default: bool,
    pub active: bool,
    pub entries: Vec<PriceBookEntry>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

impl PriceBook {
    pub fn from_row(r: PriceBookRow, entries: Vec<PriceBookEntry>) -> Self {
        PriceBook {
            id: r.id,
            name: r.name,
            currency: r.currency,
            tier: r.tier,
            is_default: r.is_default,
            active: r.active,
            entries,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
        }
    }
}

/// A product's price in a book.
#[derive(Debug, Serialize, ToSchema)]
pub struct PriceBookEntry {
    pub product_id: Uuid,
    pub product_code: String,
    pub product_name: String,
    #[schema(value_type = String, example = "8800.00")]
    pub unit_price: Decimal,
}

/// A price to set in a book.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceInput {
    pub product_id: Uuid,
    #[schema(value_type = String, example = "8800.00")]
    #[serde(deserialize_with = "super::decimal_str::required")]
    pub unit_price: Decimal,
}

/// Body of `POST /price-books`.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePriceBook {
    #[validate(length(max = 200))]
    #[schema(max_length = 200)]
    pub name: String,
    /// ISO 4217, default CNY.
    #[validate(length(equal = 3))]
    #[schema(min_length = 3, max_length = 3)]
    pub currency: Option<String>,
    /// A, B, C or D.
    pub tier: Option<String>,
    #[serde(default)]
    pub is_default: bool,
    #[serde(default)]
    #[validate(length(max = 5000))]
    #[schema(max_items = 5000)]
    pub entries: Vec<PriceInput>,
}

/// Body of `PATCH /price-books/{id}`: header changes, prices to set and prices to remove.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePriceBook {
    #[validate(length(max = 200))]
    #[schema(max_length = 200)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub tier: Option<Option<String>>,
    /// Only `true` is meaningful: makes this the currency's default book.
    pub is_default: Option<bool>,
    pub active: Option<bool>,
    /// Prices to add or change.
    #[serde(default)]
    #[validate(length(max = 5000))]
    #[schema(max_items = 5000)]
    pub set_prices: Vec<PriceInput>,
    /// Products whose price to remove.
    #[serde(default)]
    #[validate(length(max = 5000))]
    #[schema(max_items = 5000)]
    pub remove_products: Vec<Uuid>,
}

/// All price books.
#[derive(Debug, Serialize, ToSchema)]
pub struct PriceBookList {
    pub items: Vec<PriceBook>,
}
