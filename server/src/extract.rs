//! Request extractors whose rejections are problem+json, not axum's plain-text defaults.

use axum::extract::{FromRequest, FromRequestParts};

use crate::error::ApiError;

/// A JSON body. Malformed JSON, a wrong content type and an oversized body become 4xx problems.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// Path parameters.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// Query parameters.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);
