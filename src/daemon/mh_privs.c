/* mh_privs: being written (issue 5) */
typedef int mh_privs_placeholder;
