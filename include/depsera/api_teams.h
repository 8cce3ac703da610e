/* /api/teams: teams and their memberships (graph-and-api.md §3.3). */
#ifndef DEPSERA_API_TEAMS_H
#define DEPSERA_API_TEAMS_H

#include "depsera/router.h"

/* Route handlers. Each answers the request itself (JSON body, or 204 without one); none returns
 * anything to the caller. Reads need a logged-in user, mutations an admin; every mutation and its
 * audit row commit together. A malformed :id or :userId behaves as an unknown one (404). */

/* GET /api/teams: every team by name, each with member_count and service_count. */
void dps_api_teams_list(dps_req_t *r);
/* GET /api/teams/:id: the team with members (by user name) and its raw service rows (by name). */
void dps_api_teams_get(dps_req_t *r);
/* POST /api/teams: 201 with the new team, empty members/services and zero counts. */
void dps_api_teams_create(dps_req_t *r);
/* PUT /api/teams/:id: any of name, key, description, contact; 200 with the row and counts. */
void dps_api_teams_update(dps_req_t *r);
/* DELETE /api/teams/:id: 204; 409 with service_count while the team owns services. */
void dps_api_teams_delete(dps_req_t *r);
/* POST /api/teams/:id/members: 201 with the membership and its user. */
void dps_api_teams_member_add(dps_req_t *r);
/* PUT /api/teams/:id/members/:userId: change the member's role; 200 with the membership. */
void dps_api_teams_member_update(dps_req_t *r);
/* DELETE /api/teams/:id/members/:userId: 204. */
void dps_api_teams_member_remove(dps_req_t *r);

#endif
