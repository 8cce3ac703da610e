/* bcrypt hashing and constant-time verification of local passwords. */
#include "depsera/password.h"

#include <crypt.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int dps_password_hash(const char *password, int cost, char *out, size_t cap)
{
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    struct crypt_data *data;
    const char *h;
    int ret = -1;

    /* NULL random bytes: libxcrypt draws the salt from the system's CSPRNG */
    if (crypt_gensalt_rn("$2b$", (unsigned long)cost, NULL, 0, salt, sizeof(salt)) == NULL)
        return -1;
    if ((data = calloc(1, sizeof(*data))) == NULL)
        return -1;
    h = crypt_r(password, salt, data);
    if (h != NULL && strncmp(h, "$2b$", 4) == 0 && strlen(h) < cap) {
        snprintf(out, cap, "%s", h);
        ret = 0;
    }
    explicit_bzero(data, sizeof(*data));
    free(data);
    return ret;
}

int dps_password_verify(const char *password, const char *hash)
{
    struct crypt_data *data;
    const char *h;
    int ok = 0;

    if (hash == NULL || strncmp(hash, "$2", 2) != 0 || (data = calloc(1, sizeof(*data))) == NULL)
        return 0;
    h = crypt_r(password, hash, data);
    if (h != NULL && h[0] != '*' && strlen(h) == strlen(hash))
        ok = CRYPTO_memcmp(h, hash, strlen(hash)) == 0;
    explicit_bzero(data, sizeof(*data));
    free(data);
    return ok;
}
