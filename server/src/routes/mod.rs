//! HTTP handlers, one module per resource, and the OpenAPI document they make up.

pub mod accuracy;
pub mod agents;
pub mod api_keys;
pub mod campaigns;
pub mod compare;
pub mod health;
pub mod searches;
pub mod spaces;
pub mod tables;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "gpulut",
        description = "Latency lookup tables of neural-network blocks measured on mobile GPUs, and multi-objective architecture search over them. Errors are RFC 9457 problem documents (application/problem+json). Authenticate with `Authorization: Bearer <token>`.",
    ),
    modifiers(&BearerAuth),
    components(schemas(crate::error::Problem)),
    tags(
        (name = "health", description = "liveness, readiness and metrics"),
        (name = "api-keys", description = "credentials for people and scripts (admin)"),
        (name = "spaces", description = "search spaces, their blocks, and architecture analysis"),
        (name = "agents", description = "enrollment, the agent protocol (heartbeats, job leases, results), agents and devices"),
        (name = "tables", description = "latency tables and predictions from them"),
        (name = "campaigns", description = "profiling campaigns and their progress"),
        (name = "searches", description = "weighted NSGA-II searches over latency tables, and accuracy sources"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
    }
}

/// Every route with its OpenAPI description.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
        .routes(routes!(api_keys::create, api_keys::list))
        .routes(routes!(api_keys::revoke))
        .routes(routes!(api_keys::whoami))
        .routes(routes!(spaces::list))
        .routes(routes!(spaces::get))
        .routes(routes!(spaces::blocks))
        .routes(routes!(spaces::analyze))
        .routes(routes!(searches::create, searches::list))
        .routes(routes!(searches::get))
        .routes(routes!(searches::cancel))
        .routes(routes!(searches::front))
        .routes(routes!(accuracy::create))
        .routes(routes!(accuracy::get))
        .routes(routes!(agents::create_token, agents::list_tokens))
        .routes(routes!(agents::revoke_token))
        .routes(routes!(agents::enroll))
        .routes(routes!(agents::heartbeat))
        .routes(routes!(agents::claim))
        .routes(routes!(agents::renew))
        .routes(routes!(agents::release))
        .routes(routes!(agents::result))
        .routes(routes!(agents::list_agents))
        .routes(routes!(agents::revoke_agent))
        .routes(routes!(agents::list_devices, agents::create_device))
        .routes(routes!(agents::get_device))
        .routes(routes!(campaigns::create, campaigns::list))
        .routes(routes!(campaigns::get))
        .routes(routes!(campaigns::cancel))
        .routes(routes!(tables::list))
        .routes(routes!(tables::get))
        .routes(routes!(tables::predict))
        .routes(routes!(tables::entry))
        .routes(routes!(tables::matrix))
        .routes(routes!(tables::import))
        .routes(routes!(tables::validation))
        .routes(routes!(tables::predict_fleet))
        .routes(routes!(compare::compare))
        .routes(routes!(compare::framework_scatter))
}
