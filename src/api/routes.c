/* Every HTTP route depsera serves, in one table. */
#include "depsera/routes.h"
#include "depsera/util.h"

const dps_route_t dps_routes[] = {
    {"GET", "/api/health", dps_api_health, 0},
    {"GET", "/api/health/live", dps_api_health_live, 0},
};
const size_t dps_routes_count = DPS_ARRAY_SIZE(dps_routes);
