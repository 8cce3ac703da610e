/* Handlers of /api/users: admin management of accounts (graph-and-api.md §3.2), in src/api/users.c. */
#ifndef DEPSERA_API_USERS_H
#define DEPSERA_API_USERS_H

#include "depsera/router.h"

/* Every handler answers the request itself: 401/403 without an admin session, 404 `User not found`
 * for unknown or malformed (non-UUID) ids, never a 500 for bad input. User rows carry every users
 * column except password_hash. Mutations and their audit row commit in one transaction. */

/* GET /api/users: all users ordered by name. */
void dps_api_users_list(dps_req_t *r);
/* GET /api/users/:id: the user plus `teams` (as /api/auth/me). */
void dps_api_users_get(dps_req_t *r);
/* POST /api/users (local auth only, else 404 after the admin check): 201 the new user; 409 on a taken email. */
void dps_api_users_create(dps_req_t *r);
/* PUT /api/users/:id/role: 200 the updated user; refuses to demote the last active admin. */
void dps_api_users_set_role(dps_req_t *r);
/* PUT /api/users/:id/password (local auth only): 200 {"message"}. */
void dps_api_users_set_password(dps_req_t *r);
/* POST /api/users/:id/reactivate: 200 the user; 400 when already active. */
void dps_api_users_reactivate(dps_req_t *r);
/* DELETE /api/users/:id: deactivate, drop memberships and sessions; 204. Refuses the last active admin. */
void dps_api_users_deactivate(dps_req_t *r);

#endif
