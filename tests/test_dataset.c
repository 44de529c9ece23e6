// Dataset reading: HH-RLHF / SHP / plain / ids JSONL, plain and gzip; bad lines reported with
// file:line and skipped while the rest is kept; prompt preparation as the reference does it;
// the response cut at the next dialogue turn.
#include "base/common.h"
#include "pipeline/dataset.h"
#include "eval/rundir.h"
#include "tokenizer/chat.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static char g_dir[256];

static void setup(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/rc_test_dataset_XXXXXX");
    cr_assert_not_null(mkdtemp(g_dir));
}

static void teardown(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    cr_assert_eq(system(cmd), 0);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

// Reads what was reported into a string (caller frees).
static char *read_report(FILE *f) {
    fflush(f);
    long n = ftell(f);
    rewind(f);
    char *s = calloc((size_t)n + 1, 1);
    cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    return s;
}

TestSuite(dataset, .init = setup, .fini = teardown);

Test(dataset, hh_prepare) {
    char *reply = NULL;
    char *p = rc_prep_hh("\n\nHuman: What is a dog?\n\nAssistant: A dog is an animal.", &reply);
    cr_assert_str_eq(p, "\n\nHuman:  What is a dog?\n\nAssistant:");
    cr_assert_str_eq(reply, "A dog is an animal.");
    free(p);
    free(reply);
    // multi-turn: cut after the LAST "Assistant:", every "Human:" gets the extra space
    p = rc_prep_hh("\n\nHuman:How?\n\nAssistant:Boil it.\n\nHuman: And then?\n\nAssistant: Eat.", NULL);
    cr_assert_str_eq(p, "\n\nHuman: How?\n\nAssistant:Boil it.\n\nHuman:  And then?\n\nAssistant:");
    free(p);
    // "Assistant:" inside the final answer counts as the last one, as a plain rfind does
    p = rc_prep_hh("\n\nHuman: Is Assistant: a word?\n\nAssistant: Not really. Assistant: yes.", NULL);
    cr_assert_str_eq(p, "\n\nHuman:  Is Assistant: a word?\n\nAssistant: Not really. Assistant:");
    free(p);
    cr_assert_null(rc_prep_hh("\n\nHuman: no answer turn", NULL));
    cr_assert(strstr(rc_last_error(), "Assistant:"));
}

Test(dataset, shp_prepare) {
    char *p = rc_prep_shp("How do planes fly?");
    cr_assert_str_eq(p, "Human: How do planes fly?\nAssistant:");
    free(p);
    p = rc_prep_shp("Explain\nmultiline history.");
    cr_assert_str_eq(p, "Human: Explain\nmultiline history.\nAssistant:");
    free(p);
}

// The reference's begin_word for Llama-3 and Falcon: text.replace("Human:", "User: ") then the
// cut after the last "Assistant:" (HH); "User: " + history + "\nAssistant:" (SHP). Expected
// strings are what Python's str.replace / rsplit give on these inputs.
Test(dataset, turn_prefix_user) {
    char *p = rc_prep_hh_turn("\n\nHuman: Hi\n\nAssistant: Hello.\n\nHuman:Why?\n\nAssistant: Because.",
                              "User: ", NULL);
    cr_assert_str_eq(p, "\n\nUser:  Hi\n\nAssistant: Hello.\n\nUser: Why?\n\nAssistant:");
    free(p);
    p = rc_shp_prompt_turn("How do planes fly?", "User: ");
    cr_assert_str_eq(p, "User: How do planes fly?\nAssistant:");
    free(p);
    // through the loader: the same prefix on every record
    char path[512];
    snprintf(path, sizeof path, "%s/turn.jsonl", g_dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("{\"history\": \"Q one\"}\n{\"history\": \"Q two\"}\n", f);
    fclose(f);
    rc_dataset ds;
    cr_assert_eq(rc_dataset_load_turn(path, RC_DS_SHP, 0, "User: ", &ds, NULL), 0);
    cr_assert_eq(ds.n, 2);
    cr_assert_str_eq(ds.items[1].prompt, "User: Q two\nAssistant:");
    rc_dataset_free(&ds);
    cr_assert_eq(rc_dataset_load(path, RC_DS_SHP, 0, &ds, NULL), 0);
    cr_assert_str_eq(ds.items[0].prompt, "Human: Q one\nAssistant:");
    rc_dataset_free(&ds);
}

Test(dataset, response_cut) {
    const char *r = " Sure, here it is.\n\nHuman: thanks\n\nAssistant: ok";
    cr_assert_eq(rc_response_cut_len(r), strlen(" Sure, here it is."));
    r = "Answer. User: more";
    cr_assert_eq(rc_response_cut_len(r), strlen("Answer."));
    r = "No turn here.";
    cr_assert_eq(rc_response_cut_len(r), strlen(r));
    r = "Human: at once";
    cr_assert_eq(rc_response_cut_len(r), 0);
}

Test(dataset, hh_file_with_bad_lines) {
    char path[300];
    snprintf(path, sizeof path, "%s/hh.jsonl", g_dir);
    write_text(path,
               "{\"chosen\": \"\\n\\nHuman: Hi\\n\\nAssistant: Hello\", \"rejected\": \"x\"}\n"  // 1 ok
               "{\"chosen\": \"\\n\\nHuman: Hi\\n\\nAssist\n"                                   // 2 malformed
               "\n"                                                                              // 3 blank
               "{\"rejected\": \"only rejected\"}\n"                                            // 4 missing
               "{\"chosen\": \"   \"}\n"                                                        // 5 empty
               "{\"chosen\": \"\\n\\nHuman: no reply turn\"}\n"                                 // 6 no Assistant:
               "{\"chosen\": 42}\n"                                                             // 7 wrong type
               "[1, 2]\n"                                                                       // 8 not object
               "{\"chosen\": \"\\n\\nHuman: Q2\\n\\nAssistant: A2\"} trailing\n"                // 9 trailing
               "{\"chosen\": \"\\n\\nHuman: Q3\\n\\nAssistant: A3\"}");                         // 10 ok, no \n
    FILE *rep = tmpfile();
    rc_dataset ds;
    cr_assert_eq(rc_dataset_load(path, RC_DS_HH, 0, &ds, rep), 0, "%s", rc_last_error());
    cr_assert_eq(ds.n, 2);
    cr_assert_eq(ds.n_bad, 7);
    cr_assert_eq(ds.items[0].line, 1);
    cr_assert_eq(ds.items[1].line, 10);
    cr_assert_str_eq(ds.items[0].prompt, "\n\nHuman:  Hi\n\nAssistant:");
    cr_assert_str_eq(ds.items[0].reference, "Hello");
    cr_assert_str_eq(ds.items[1].prompt, "\n\nHuman:  Q3\n\nAssistant:");
    char *r = read_report(rep);
    char want[400];
    const char *reasons[][2] = {{"2", "malformed JSON"}, {"4", "missing field \"chosen\""},
                                {"5", "empty prompt"},   {"6", "Assistant:"},
                                {"7", "not a string"},   {"8", "not a JSON object"},
                                {"9", "trailing data"}};
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++) {
        snprintf(want, sizeof want, "%s:%s: ", path, reasons[i][0]);
        const char *at = strstr(r, want);
        cr_assert_not_null(at, "no report for line %s in:\n%s", reasons[i][0], r);
        const char *eol = strchr(at, '\n');
        cr_assert(strstr(at, reasons[i][1]) && strstr(at, reasons[i][1]) < eol,
                  "line %s: expected '%s' in: %.*s", reasons[i][0], reasons[i][1], (int)(eol - at), at);
    }
    cr_assert_null(strstr(r, ":3: "), "blank lines are not errors");
    free(r);
    fclose(rep);
    rc_dataset_free(&ds);
}

Test(dataset, shp_gzip_and_limit) {
    char path[300];
    snprintf(path, sizeof path, "%s/shp.jsonl.gz", g_dir);
    gzFile g = gzopen(path, "wb");
    cr_assert_not_null(g);
    gzputs(g, "{\"id\": \"a\", \"history\": \"Why is the sky blue?\", \"preferred\": \"Rayleigh.\"}\n");
    gzputs(g, "{\"id\": \"b\", \"hist\": \"typo\"}\n");
    gzputs(g, "{\"id\": \"c\", \"history\": \"Second question\"}\n");
    gzputs(g, "{\"id\": \"d\", \"history\": \"Third\"}\n");
    gzclose(g);
    rc_dataset ds;
    FILE *rep = tmpfile();
    cr_assert_eq(rc_dataset_load(path, RC_DS_SHP, 0, &ds, rep), 0, "%s", rc_last_error());
    cr_assert_eq(ds.n, 3);
    cr_assert_str_eq(ds.items[0].prompt, "Human: Why is the sky blue?\nAssistant:");
    cr_assert_str_eq(ds.items[0].reference, "Rayleigh.");
    cr_assert_null(ds.items[1].reference);
    cr_assert_eq(ds.items[1].line, 3);
    char *r = read_report(rep);
    cr_assert(strstr(r, ":2: missing field \"history\""), "%s", r);
    free(r);
    fclose(rep);
    rc_dataset_free(&ds);
    // limit counts usable records
    cr_assert_eq(rc_dataset_load(path, RC_DS_SHP, 2, &ds, NULL), 0);
    cr_assert_eq(ds.n, 2);
    rc_dataset_free(&ds);
}

Test(dataset, plain_and_ids) {
    char path[300];
    snprintf(path, sizeof path, "%s/p.jsonl", g_dir);
    write_text(path, "{\"prompt\": \"Tell me a joke.\"}\n{\"prompt\": \"\"}\n{\"ids\": [1,2]}\n");
    rc_dataset ds;
    cr_assert_eq(rc_dataset_load(path, RC_DS_PLAIN, 0, &ds, NULL), 0);
    cr_assert_eq(ds.n, 1);
    cr_assert_str_eq(ds.items[0].prompt, "Tell me a joke.");
    cr_assert_eq(ds.n_bad, 2);
    rc_dataset_free(&ds);
    write_text(path, "{\"ids\": [1, 5, 7]}\n{\"ids\": [1, -2]}\n{\"ids\": [1.5]}\n{\"ids\": \"1 2\"}\n{\"ids\": []}\n");
    cr_assert_eq(rc_dataset_load(path, RC_DS_IDS, 0, &ds, NULL), 0);
    cr_assert_eq(ds.n, 1);
    cr_assert_eq(ds.n_bad, 4);
    cr_assert_eq(ds.items[0].n_ids, 3);
    cr_assert_eq(ds.items[0].ids[2], 7);
    rc_dataset_free(&ds);
}

Test(dataset, errors) {
    rc_dataset ds;
    cr_assert_eq(rc_dataset_load("/nonexistent/x.jsonl", RC_DS_HH, 0, &ds, NULL), -1);
    cr_assert(strstr(rc_last_error(), "/nonexistent/x.jsonl"), "%s", rc_last_error());
    rc_ds_format f;
    cr_assert_eq(rc_ds_format_parse("csv", &f), -1);
    cr_assert(strstr(rc_last_error(), "csv"));
    cr_assert_eq(rc_ds_format_parse("shp", &f), 0);
    cr_assert_eq(f, RC_DS_SHP);
}

Test(dataset, long_lines_and_crlf) {
    char path[300];
    snprintf(path, sizeof path, "%s/long.jsonl", g_dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "{\"prompt\": \"");
    for (int i = 0; i < 300000; i++) fputc('a' + i % 26, f);
    fprintf(f, "\"}\r\n{\"prompt\": \"short\"}\r\n");
    fclose(f);
    rc_dataset ds;
    cr_assert_eq(rc_dataset_load(path, RC_DS_PLAIN, 0, &ds, NULL), 0, "%s", rc_last_error());
    cr_assert_eq(ds.n, 2);
    cr_assert_eq(strlen(ds.items[0].prompt), 300000);
    cr_assert_str_eq(ds.items[1].prompt, "short");
    cr_assert_eq(ds.items[1].line, 2);
    rc_dataset_free(&ds);
}

// NUL bytes (issue 16): a raw NUL used to lose the next line and shift later line numbers; a NUL
// as a line's first byte dropped the line unreported; "\u0000" cut the prompt. Each is now a
// reported, skipped line, and the line numbers of the rest stay right; plain and gzip alike.
static void nul_lines(const char *path, int gz) {
    static const char data[] = "{\"prompt\": \"one\"}\n"
                               "{\"prompt\": \"t\0wo\"}\n"
                               "{\"prompt\": \"three\"}\n"
                               "\0{\"prompt\": \"four\"}\n"
                               "{\"prompt\": \"fi\\u0000ve\"}\n"
                               "{\"prompt\": \"six \\\\u0000 is text\"}\n"
                               "{\"prompt\": \"seven\"}";
    size_t n = sizeof data - 1;
    if (gz) {
        gzFile g = gzopen(path, "wb");
        cr_assert(g && gzwrite(g, data, (unsigned)n) == (int)n);
        gzclose(g);
    } else {
        FILE *f = fopen(path, "wb");
        cr_assert(f && fwrite(data, 1, n, f) == n);
        fclose(f);
    }
    FILE *rep = tmpfile();
    rc_dataset ds;
    cr_assert_eq(rc_dataset_load(path, RC_DS_PLAIN, 0, &ds, rep), 0, "%s", rc_last_error());
    cr_assert_eq(ds.n, 4, "%s: kept %d", path, ds.n);
    const char *want[] = {"one", "three", "six \\u0000 is text", "seven"};
    long lines[] = {1, 3, 6, 7};
    for (int i = 0; i < 4; i++) {
        cr_assert_str_eq(ds.items[i].prompt, want[i]);
        cr_assert_eq(ds.items[i].line, lines[i], "item %d on line %ld", i, ds.items[i].line);
    }
    cr_assert_eq(ds.n_bad, 3);
    char *r = read_report(rep);
    char exp[512];
    snprintf(exp, sizeof exp, "%s:2: a NUL byte at byte 14; line skipped", path);
    cr_assert(strstr(r, exp), "%s", r);
    snprintf(exp, sizeof exp, "%s:4: a NUL byte at byte 1; line skipped", path);
    cr_assert(strstr(r, exp), "%s", r);
    snprintf(exp, sizeof exp, "%s:5: a \\u0000 escape", path);
    cr_assert(strstr(r, exp), "%s", r);
    free(r);
    fclose(rep);
    rc_dataset_free(&ds);
}

Test(dataset, nul_bytes_are_reported_lines) {
    char path[300];
    snprintf(path, sizeof path, "%s/nul.jsonl", g_dir);
    nul_lines(path, 0);
    snprintf(path, sizeof path, "%s/nul.jsonl.gz", g_dir);
    nul_lines(path, 1);
}

Test(dataset, directory_and_oov_ids) {
    rc_dataset ds;
    cr_assert_eq(rc_dataset_load(g_dir, RC_DS_PLAIN, 0, &ds, NULL), -1);
    cr_assert(strstr(rc_last_error(), "is a directory; expected a JSONL file"), "%s", rc_last_error());
    char path[300];
    snprintf(path, sizeof path, "%s/ids.jsonl", g_dir);
    write_text(path, "{\"ids\": [1, 2]}\n{\"ids\": [5, 100]}\n{\"ids\": [99]}\n");
    cr_assert_eq(rc_dataset_load(path, RC_DS_IDS, 0, &ds, NULL), 0);
    FILE *rep = tmpfile();
    cr_assert_eq(rc_dataset_check_ids(&ds, path, 100, rep), 1);
    cr_assert_eq(ds.n, 2);
    cr_assert_eq(ds.n_bad, 1);
    cr_assert_eq(ds.items[1].line, 3);
    char *r = read_report(rep), exp[512];
    snprintf(exp, sizeof exp, "%s:2: \"ids\"[1] = 100 is outside the model's vocabulary (100 tokens); "
             "line skipped", path);
    cr_assert(strstr(r, exp), "%s", r);
    free(r);
    fclose(rep);
    rc_dataset_free(&ds);
}
